"""Turn a run's results into bench/results/results.md and the two plots."""

from pathlib import Path
from typing import Any

# Each peer's key in the results and its column name. "peer" is LiteLLM's key, as in the results of earlier runs.
PEERS = (("peer", "LiteLLM"), ("ogx", "ogx"))
NONE = "—"


def _ms(x: float) -> str:
    return f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"


def _x(x: float) -> str:
    return f"{x:.2f}×"


def _p50_p99(stats: dict[str, float] | None) -> str:
    return f"{_ms(stats['p50'])} / {_ms(stats['p99'])}" if stats else NONE


def _div(a: float, b: float) -> float | None:
    """a ÷ b, or None when b is not positive (a ratio of added latencies is meaningless then)."""
    return a / b if b > 0 else None


def _peer_names(r: dict[str, Any]) -> str:
    """'LiteLLM proxy 1.100.5, ogx 1.5.0', with '—' for a peer the run did not have."""
    return ", ".join(f"{r[key]['name']} {r[key]['version']}" if r.get(key) else f"{label} {NONE}"
                     for key, label in PEERS)


def markdown(r: dict[str, Any]) -> str:
    """The results as markdown tables, every figure next to what it is compared with."""
    m = r["machine"]
    lines = [f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}, "
             f"temporalio {m['temporalio']}; peers: {_peer_names(r)}"
             f"{' (SMOKE RUN: tiny counts)' if r['smoke'] else ''}.", ""]
    lines += _targets(r)
    if "overhead" in r:
        lines += _overhead(r["overhead"])
    if "phases" in r:
        lines += ["", "Where a single-step response's time goes (median ms, from the Temporal history's event times): "
                  + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in r["phases"].items()) + "."]
    if "steps" in r:
        lines += _steps(r["steps"])
    if "throughput" in r:
        lines += _throughput(r["throughput"])
    if "streaming" in r:
        lines += _streaming(r["streaming"])
    if "memory" in r:
        lines += _memory(r["memory"])
    if "history" in r:
        lines += _history(r["history"])
    if "mcp" in r:
        lines += _mcp(r["mcp"])
    if "serialization" in r:
        lines += _serialization(r["serialization"])
    if "profile" in r:
        lines += ["", f"Profiled run: {r['profile']['per_second']:.1f} responses/s with py-spy attached "
                  f"({', '.join(r['profile']['files'])})."]
    return "\n".join(lines) + "\n"


Target = tuple[str, str, str, bool | None]  # what is aimed at, measured p50, measured p99, met (None: not measured)


def _targets(r: dict[str, Any]) -> list[str]:
    """The targets table: each goal against this run's figures; met is judged on p50, p99 is shown beside it."""
    rows = [*_step_targets(r.get("steps")), *_overhead_targets(r.get("overhead")),
            *_throughput_targets(r.get("throughput")), *_streaming_targets(r.get("streaming"))]
    met = {True: "yes", False: "**no**", None: NONE}
    return ["### Targets", "", "| target | measured p50 | measured p99 | met (p50) |", "|---|---|---|---|",
            *(f"| {goal} | {p50} | {p99} | {met[ok]} |" for goal, p50, p99, ok in rows), ""]


def _step_targets(s: dict[str, Any] | None) -> list[Target]:
    goal = "added latency per tool step ≤ 15 ms (steps: linear fit, agentrunner − direct)"
    if not s:
        return [(goal, NONE, NONE, None)]
    p99 = s.get("added_ms_per_step_p99")  # absent in results from before p99 was fitted
    return [(goal, _ms(s["added_ms_per_step"]), _ms(p99) if p99 is not None else NONE,
             s["added_ms_per_step"] <= 15)]


def _overhead_targets(overhead: dict[str, Any] | None) -> list[Target]:
    goal, vs = "single-step blocking, 0 ms upstream: added ≤ 30 ms", "… and ≤ 3× LiteLLM's added latency"
    o = (overhead or {}).get("0ms")
    if not o:
        return [(goal, NONE, NONE, None), (vs, NONE, NONE, None)]
    rows: list[Target] = [(goal, _ms(o["added_ms_p50"]), _ms(o["added_ms_p99"]), o["added_ms_p50"] <= 30)]
    if "peer" not in o:
        return [*rows, (vs, NONE, NONE, None)]
    ratio = {q: _div(o["added_ms_" + q], o["peer"][q] - o["direct"][q]) for q in ("p50", "p99")}
    shown = {q: f"{_x(v)} (LiteLLM adds {_ms(o['peer'][q] - o['direct'][q])})" if v is not None else NONE
             for q, v in ratio.items()}
    return [*rows, (vs, shown["p50"], shown["p99"], None if ratio["p50"] is None else ratio["p50"] <= 3)]


def _throughput_targets(t: dict[str, Any] | None) -> list[Target]:
    goal, vs = "throughput ≥ 60 single-step responses/s (best worker count)", "… and ≥ 0.6× ogx's, same run"
    if not t:
        return [(goal, NONE, NONE, None), (vs, NONE, NONE, None)]
    best = max(t["rows"], key=lambda row: row["per_second"])
    workers = f"{best['workers']} worker{'s' * (best['workers'] != 1)}"
    rows: list[Target] = [(goal, f"{best['per_second']:.1f}/s ({workers})", NONE, best["per_second"] >= 60)]
    if "ogx_per_second" not in t:
        return [*rows, (vs, NONE, NONE, None)]
    ratio = _div(best["per_second"], t["ogx_per_second"])
    return [*rows, (vs, f"{_x(ratio)} (ogx {t['ogx_per_second']:.1f}/s)" if ratio is not None else NONE, NONE,
                    None if ratio is None else ratio >= 0.6)]


def _streaming_targets(st: dict[str, Any] | None) -> list[Target]:
    first = "streaming: first delta ≤ 3 ms after the direct stream's"
    gap = "streaming: gap between deltas ≤ 1.1× direct's"
    if not st:
        return [(first, NONE, NONE, None), (gap, NONE, NONE, None)]
    f, g = st["first_token_ms"], st["inter_delta_gap_ms"]
    added = {q: f["agentrunner"][q] - f["direct"][q] for q in ("p50", "p99")}
    ratio = {q: _div(g["agentrunner"][q], g["direct"][q]) for q in ("p50", "p99")}
    shown = {q: _x(v) if v is not None else NONE for q, v in ratio.items()}
    return [(first, f"+{_ms(added['p50'])}", f"+{_ms(added['p99'])}", added["p50"] <= 3),
            (gap, shown["p50"], shown["p99"], None if ratio["p50"] is None else ratio["p50"] <= 1.1)]


def _overhead(overhead: dict[str, Any]) -> list[str]:
    lines = ["### 1. Overhead per single-step blocking response", "",
             "| upstream latency | direct p50 / p99 | agentrunner p50 / p99 | added p50 | ratio p50 / p99 |"
             + "".join(f" {label} p50 / p99 | agentrunner ÷ {label} p50 |" for _, label in PEERS),
             "|---|---|---|---|---|" + "---|---|" * len(PEERS)]
    for latency, o in overhead.items():
        d, a = o["direct"], o["agentrunner"]
        row = (f"| {latency} | {_ms(d['p50'])} / {_ms(d['p99'])} | {_ms(a['p50'])} / {_ms(a['p99'])} | "
               f"{_ms(o['added_ms_p50'])} | {_x(o['ratio_vs_direct_p50'])} / {_x(o['ratio_vs_direct_p99'])} |")
        for key, _ in PEERS:
            ratio = f"ratio_vs_{key}_p50"
            row += f" {_p50_p99(o.get(key))} | {_x(o[ratio]) if ratio in o else NONE} |"
        lines.append(row)
    return lines


def _steps(s: dict[str, Any]) -> list[str]:
    lines = ["", "### 2. Overhead per tool step (blocking, p50)", "",
             "| tool steps | direct (client runs the loop) | agentrunner | ratio |", "|---|---|---|---|"]
    for row in s["rows"]:
        d, a = row["direct"]["p50"], row["agentrunner"]["p50"]
        lines.append(f"| {row['steps']} | {_ms(d)} | {_ms(a)} | {_x(a / d)} |")
    fa, fd = s["fit_p50"]["agentrunner"], s["fit_p50"]["direct"]
    return [*lines, "", f"Linear fit: agentrunner {_ms(fa['intercept'])} + {_ms(fa['slope'])}/step "
                    f"(r² {fa['r2']:.3f}); direct {_ms(fd['intercept'])} + {_ms(fd['slope'])}/step; "
                    f"**added per step: {_ms(s['added_ms_per_step'])}**."]


def _throughput(t: dict[str, Any]) -> list[str]:
    base = t["rows"][0]["per_second"]
    lines = ["", f"### 3. Throughput at saturation (single-step, {t['concurrency']} concurrent clients, "
             f"{t['window_s']:.0f} s window)", "",
             "| worker processes | responses/s | vs 1 worker | errors | CPU per response: API / workers / "
             "Temporal / PostgreSQL / rest (upstream, client, OS) |", "|---|---|---|---|---|"]
    for row in t["rows"]:
        cpu = row["cpu_ms_per_response"]
        parts = [cpu[k] for k in ("api", "workers", "temporal", "postgres", "rest") if k in cpu]  # older runs: 3
        lines.append(f"| {row['workers']} | {row['per_second']:.1f} | {_x(row['per_second'] / base)} | "
                     f"{row['errors']} | {' / '.join(_ms(v) for v in parts)} |")
    if "agent" in t:
        a = t["agent"]
        cpu = a["cpu_ms_per_response"]
        parts = [cpu[k] for k in ("api", "workers", "temporal", "postgres", "rest")]
        lines.append(f"| {a['workers']}, 5-step agent ({a['tool_steps']} tool steps) | {a['per_second']:.1f} | — | "
                     f"{a['errors']} | {' / '.join(_ms(v) for v in parts)} |")
    peers = "; ".join(f"{label}: " + (f"{t[key + '_per_second']:.1f} responses/s" if key + "_per_second" in t
                                        else NONE) for key, label in PEERS)
    return [*lines, "", f"Same clients straight to the upstream: {t['direct_per_second']:.0f} req/s; {peers}."]


def _streaming(st: dict[str, Any]) -> list[str]:
    b = st["behaviour"]
    lines = ["", f"### 4. Streaming ({b['tokens']} tokens, {b['token_delay_ms']} ms apart)", "",
             "| | first token → client's first delta p50 / p99 | gap between deltas p50 / p99 | deltas per response |",
             "|---|---|---|---|"]
    gaps, first = st["inter_delta_gap_ms"], st["first_token_ms"]
    for name, label in (("agentrunner", "agentrunner"), ("direct", "direct"), *PEERS):
        deltas = st["deltas_per_response"].get(name)
        lines.append(f"| {label} | {_p50_p99(first.get(name))} | {_p50_p99(gaps.get(name))} | "
                     f"{f'{deltas:.1f}' if deltas is not None else NONE} |")
    ratios = "".join(f"; agentrunner ÷ {label}: {_x(first[f'ratio_vs_{key}_p50'])}"
                     for key, label in PEERS if f"ratio_vs_{key}_p50" in first)
    return [*lines, "", f"First-delta latency, agentrunner − direct: {_ms(first['added_ms_p50'])} (p50){ratios}."]


def _memory(mem: dict[str, Any]) -> list[str]:
    lines = ["", f"### 5. Resident memory (API + {mem['workers']} workers)", "",
             f"| process | idle | {mem['in_flight']} responses in flight |", "|---|---|---|"]
    lines += [f"| {k} | {v:.0f} MiB | {mem['in_flight_mib'][k]:.0f} MiB |" for k, v in mem["idle_mib"].items()]
    return [*lines, f"| **total** | {mem['idle_total_mib']:.0f} MiB | {mem['in_flight_total_mib']:.0f} MiB |"]


def _history(h: dict[str, Any]) -> list[str]:
    lines = ["", "### 6. Temporal history per response", "",
             "| tool steps | events | bytes | bytes with a 100 kB answer |", "|---|---|---|---|"]
    lines += [f"| {row['steps']} | {row['events']} | {row['bytes']:,} | {row['bytes_100kB_answer']:,} |"
              for row in h["rows"]]
    return [*lines, "", f"Linear fit: {h['fit']['intercept']:,.0f} B + {h['fit']['slope']:,.0f} B/step "
            f"(r² {h['fit']['r2']:.4f}); a 100 kB answer grows the history by at most "
            f"{_x(h['payload_leak_ratio'])} (the text stays in PostgreSQL)."]


def _mcp(m: dict[str, Any]) -> list[str]:
    # Only ogx runs MCP tools server-side among the peers (bench.sections.MCP_PEERS).
    ogx = "ogx" in m["per_call_ms"]
    lines = ["", "### 8. A remote MCP tool call (blocking, p50)", "",
             "| MCP calls | agentrunner | ogx | client runs the loop itself |", "|---|---|---|---|"]
    lines += [f"| {row['calls']} | {_ms(row['agentrunner']['p50'])} | {_ms(row['ogx']['p50']) if ogx else NONE} | "
              f"{_ms(row['direct']['p50'])} |" for row in m["rows"]]
    by_ogx = f"; by ogx (re-lists the MCP tools each response): {_ms(m['ogx_added_ms_per_call'])}" if ogx else ""
    return [*lines, "", f"Per call (slope between 1 and 3 calls): agentrunner {_ms(m['per_call_ms']['agentrunner'])}, "
            + (f"ogx {_ms(m['per_call_ms']['ogx'])}, " if ogx else "")
            + f"direct {_ms(m['per_call_ms']['direct'])} (an MCP call alone, in a session of its own: "
            f"{_ms(m['direct_call_ms'])}); added per call by agentrunner: {_ms(m['added_ms_per_call'])}{by_ogx}."]


def _serialization(ser: dict[str, Any]) -> list[str]:
    lines = ["", "### 7. Building the wire objects as typed models (openai.types.responses), per response", "",
             "| workload | objects | p50 | p99 |", "|---|---|---|---|"]
    names = {"blocking": "blocking, one step", "streamed_3_steps": "streamed, 3 steps, 40 text deltas"}
    return lines + [f"| {names[k]} | {v['objects']} | {v['p50_us'] / 1000:.2f} ms | {v['p99_us'] / 1000:.2f} ms |"
                    for k, v in ser.items()]


def plots(r: dict[str, Any], out: Path) -> list[Path]:
    """latency-vs-steps.png and throughput-vs-workers.png (for the sections the run has)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    if "steps" in r:
        rows = r["steps"]["rows"]
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, label in (("agentrunner", "agentrunner (durable)"), ("direct", "client loop, direct to upstream")):
            ax.plot([x["steps"] for x in rows], [x[key]["p50"] for x in rows], marker="o", label=label)
        ax.set(xlabel="tool steps per response", ylabel="p50 latency (ms)",
               title="Latency vs tool steps (0 ms upstream)")
        ax.grid(alpha=0.3)
        ax.legend()
        made.append(out / "latency-vs-steps.png")
        fig.tight_layout()
        fig.savefig(made[-1], dpi=110)
        plt.close(fig)
    if "throughput" in r:
        t = r["throughput"]["rows"]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar([str(x["workers"]) for x in t], [x["per_second"] for x in t], color="tab:blue", label="agentrunner")
        for (key, label), colour in zip(PEERS, ("tab:orange", "tab:green"), strict=True):
            if key + "_per_second" in r["throughput"]:  # a peer has no workers to vary: one line across
                ax.axhline(r["throughput"][key + "_per_second"], color=colour, linestyle="--", label=label)
        ax.set(xlabel="worker processes", ylabel="responses / s",
               title=f"Throughput at saturation ({r['machine']['cores']} cores, whole stack on one machine)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
        made.append(out / "throughput-vs-workers.png")
        fig.tight_layout()
        fig.savefig(made[-1], dpi=110)
        plt.close(fig)
    return made


def write_report(r: dict[str, Any], out: Path) -> None:
    """Write results.md and the plots next to results.json."""
    (out / "results.md").write_text(markdown(r))
    plots(r, out)
