"""The benchmark report: the targets table is computed from the result JSON, and a missing peer shows as "—"."""
# ruff: noqa: RUF001  (the report prints multiplication signs)

import json
from pathlib import Path
from typing import Any

from bench.report import markdown

ROOT = Path(__file__).resolve().parent.parent.parent


def _stats(p50: float, p99: float) -> dict[str, float]:
    return {"p50": p50, "p99": p99, "n": 10}


def _result() -> dict[str, Any]:
    """A run with both peers whose figures meet some targets and miss others."""
    zero = {"agentrunner": _stats(22.0, 40.0), "direct": _stats(2.0, 3.0), "peer": _stats(10.0, 12.0),
            "ogx": _stats(25.0, 30.0), "added_ms_p50": 20.0, "added_ms_p99": 37.0, "ratio_vs_direct_p50": 11.0,
            "ratio_vs_direct_p99": 13.3, "ratio_vs_peer_p50": 2.2, "ratio_vs_ogx_p50": 0.88}
    stream_first = {"agentrunner": _stats(5.0, 9.0), "direct": _stats(1.0, 2.0), "ogx": _stats(2.0, 3.0),
                    "added_ms_p50": 4.0, "ratio_vs_ogx_p50": 2.5}
    stream_gap = {"agentrunner": _stats(21.0, 30.0), "direct": _stats(20.0, 22.0), "ogx": _stats(20.0, 21.0)}
    return {"machine": {"date": "today", "cores": 2, "cpu": "cpu", "memory_gib": 1, "python": "3.11",
                        "temporalio": "1"},
            "smoke": False, "peer": {"name": "LiteLLM proxy", "version": "1.100.5"},
            "ogx": {"name": "ogx", "version": "1.5.0"},
            "overhead": {"0ms": zero},
            "steps": {"rows": [{"steps": 1, "agentrunner": _stats(30.0, 40.0), "direct": _stats(4.0, 5.0)}],
                      "fit_p50": {k: {"intercept": 1.0, "slope": 2.0, "r2": 1.0} for k in ("agentrunner", "direct")},
                      "added_ms_per_step": 12.0, "added_ms_per_step_p99": 18.0},
            "throughput": {"concurrency": 32, "window_s": 15, "direct_per_second": 500.0, "ogx_per_second": 100.0,
                           "rows": [{"workers": n, "per_second": s, "errors": 0,
                                     "cpu_ms_per_response": {"api": 1.0, "workers": 1.0, "rest": 1.0}}
                                    for n, s in ((1, 50.0), (2, 70.0))]},
            "streaming": {"behaviour": {"tokens": 20, "token_delay_ms": 20}, "first_token_ms": stream_first,
                          "inter_delta_gap_ms": stream_gap,
                          "deltas_per_response": {"agentrunner": 20.0, "direct": 20.0, "ogx": 20.0}}}


def _row(md: str, starts: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith("| " + starts))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_targets_table_judges_p50_and_shows_p99() -> None:
    md = markdown(_result())
    assert "peers: LiteLLM proxy 1.100.5, ogx 1.5.0." in md
    assert _row(md, "added latency per tool step")[1:] == ["12.0 ms", "18.0 ms", "yes"]
    assert _row(md, "single-step blocking")[1:] == ["20.0 ms", "37.0 ms", "yes"]
    assert _row(md, "… and ≤ 3× LiteLLM")[1:] == ["2.50× (LiteLLM adds 8.0 ms)", "4.11× (LiteLLM adds 9.0 ms)", "yes"]
    assert _row(md, "throughput ≥ 60")[1:] == ["70.0/s (2 workers)", "—", "yes"]
    assert _row(md, "… and ≥ 0.6× ogx")[1:] == ["0.70× (ogx 100.0/s)", "—", "yes"]
    assert _row(md, "streaming: first delta")[1:] == ["+4.0 ms", "+7.0 ms", "**no**"]
    assert _row(md, "streaming: gap")[1:] == ["1.05×", "1.36×", "yes"]
    assert _row(md, "ogx |")[1:3] == ["2.0 ms / 3.0 ms", "20.0 ms / 21.0 ms"]  # the streaming table's ogx row
    assert _row(md, "LiteLLM |")[1:] == ["—", "—", "—"]  # LiteLLM was not in this streaming section


def _without(value: Any, peer: str) -> Any:
    """The results as a run without this peer would have written them."""
    if isinstance(value, dict):
        return {k: _without(v, peer) for k, v in value.items() if not k.startswith(peer) and peer not in k}
    if isinstance(value, list):
        return [_without(v, peer) for v in value]
    return value


def test_results_without_ogx_still_render() -> None:
    """A run without ogx (`--ogx none`): its columns and the comparisons with it say "—"."""
    r = _without(json.loads((ROOT / "bench" / "results" / "results.json").read_text()), "ogx")
    md = markdown(r)
    assert "ogx —" in md
    assert _row(md, "… and ≥ 0.6× ogx")[1:] == ["—", "—", "—"]
    assert _row(md, "0ms")[-2:] == ["—", "—"]  # ogx p50 / p99 and agentrunner ÷ ogx
