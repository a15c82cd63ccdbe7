"""Turn a run's results into bench/results/results.md and the two plots."""

from pathlib import Path
from typing import Any


def _ms(x: float) -> str:
    return f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"


def _x(x: float) -> str:
    return f"{x:.2f}×"


def markdown(r: dict[str, Any]) -> str:
    """The results as markdown tables, every figure next to what it is compared with."""
    m = r["machine"]
    peer = r.get("peer")
    lines = [f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}, "
             f"temporalio {m['temporalio']}; peer: {peer['name'] + ' ' + peer['version'] if peer else 'none'}"
             f"{' (SMOKE RUN: tiny counts)' if r['smoke'] else ''}.", ""]
    if "overhead" in r:
        lines += _overhead(r["overhead"], peer)
    if "phases" in r:
        lines += ["", "Where a single-step response's time goes (median ms, from the Temporal history's event times): "
                  + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in r["phases"].items()) + "."]
    if "steps" in r:
        lines += _steps(r["steps"])
    if "throughput" in r:
        lines += _throughput(r["throughput"])
    if "streaming" in r:
        lines += _streaming(r["streaming"], peer)
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


def _overhead(overhead: dict[str, Any], peer: Any) -> list[str]:
    lines = ["### 1. Overhead per single-step blocking response", "",
             "| upstream latency | direct p50 / p99 | agentrunner p50 / p99 | added p50 | ratio p50 / p99 |"
             + (" peer p50 / p99 | agentrunner ÷ peer p50 |" if peer else ""),
             "|---|---|---|---|---|" + ("---|---|" if peer else "")]
    for latency, o in overhead.items():
        d, a = o["direct"], o["agentrunner"]
        row = (f"| {latency} | {_ms(d['p50'])} / {_ms(d['p99'])} | {_ms(a['p50'])} / {_ms(a['p99'])} | "
               f"{_ms(o['added_ms_p50'])} | {_x(o['ratio_vs_direct_p50'])} / {_x(o['ratio_vs_direct_p99'])} |")
        if peer:
            row += f" {_ms(o['peer']['p50'])} / {_ms(o['peer']['p99'])} | {_x(o['ratio_vs_peer_p50'])} |"
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
             "rest (Temporal, PostgreSQL, upstream, client) |", "|---|---|---|---|---|"]
    for row in t["rows"]:
        cpu = row["cpu_ms_per_response"]
        lines.append(f"| {row['workers']} | {row['per_second']:.1f} | {_x(row['per_second'] / base)} | "
                     f"{row['errors']} | {_ms(cpu['api'])} / {_ms(cpu['workers'])} / {_ms(cpu['rest'])} |")
    return [*lines, "", f"Same clients straight to the upstream: {t['direct_per_second']:.0f} req/s"
                    + (f"; peer: {t['peer_per_second']:.1f} responses/s." if "peer_per_second" in t else ".")]


def _streaming(st: dict[str, Any], peer: Any) -> list[str]:
    b = st["behaviour"]
    lines = ["", f"### 4. Streaming ({b['tokens']} tokens, {b['token_delay_ms']} ms apart)", "",
             "| | first token → client's first delta p50 / p99 | gap between deltas p50 / p99 | deltas per response |",
             "|---|---|---|---|"]
    for name, g in st["inter_delta_gap_ms"].items():
        if not isinstance(g, dict):
            continue
        f = st["first_token_ms"][name]
        lines.append(f"| {name} | {_ms(f['p50'])} / {_ms(f['p99'])} | {_ms(g['p50'])} / {_ms(g['p99'])} | "
                     f"{st['deltas_per_response'][name]:.1f} |")
    ratio_line = f"First-delta latency, agentrunner − direct: {_ms(st['first_token_ms']['added_ms_p50'])} (p50)"
    if peer:
        ratio_line += f"; agentrunner ÷ peer: {_x(st['first_token_ms']['ratio_vs_peer_p50'])}"
    return [*lines, "", ratio_line + "."]


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
    lines = ["", "### 8. A remote MCP tool call (blocking, p50)", "",
             "| MCP calls | agentrunner | client runs the loop itself |", "|---|---|---|"]
    lines += [f"| {row['calls']} | {_ms(row['agentrunner']['p50'])} | {_ms(row['direct']['p50'])} |"
              for row in m["rows"]]
    return [*lines, "", f"Per call (slope between 1 and 3 calls): agentrunner {_ms(m['per_call_ms']['agentrunner'])}, "
            f"direct {_ms(m['per_call_ms']['direct'])} (an MCP call alone, in a session of its own: "
            f"{_ms(m['direct_call_ms'])}); added by agentrunner per call: {_ms(m['added_ms_per_call'])}."]


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
        ax.bar([str(x["workers"]) for x in t], [x["per_second"] for x in t], color="tab:blue")
        ax.set(xlabel="worker processes", ylabel="responses / s",
               title=f"Throughput at saturation ({r['machine']['cores']} cores, whole stack on one machine)")
        ax.grid(axis="y", alpha=0.3)
        made.append(out / "throughput-vs-workers.png")
        fig.tight_layout()
        fig.savefig(made[-1], dpi=110)
        plt.close(fig)
    return made


def write_report(r: dict[str, Any], out: Path) -> None:
    """Write results.md and the plots next to results.json."""
    (out / "results.md").write_text(markdown(r))
    plots(r, out)
