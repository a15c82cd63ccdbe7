"""The benchmark harness still runs end to end (tiny counts; the figures themselves are not judged here)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.stack  # the harness starts embedded PostgreSQL, Temporal, the API and workers


@pytest.mark.timeout(420)
def test_bench_smoke_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--litellm", "none", "--ogx", "none",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    r = json.loads((out / "results.json").read_text())
    assert set(r) >= {"machine", "overhead", "phases", "steps", "streaming", "history", "memory", "throughput",
                      "serialization", "mcp"}
    for latency in ("0ms", "500ms"):
        o = r["overhead"][latency]
        assert o["agentrunner"]["n"] >= 2 and o["direct"]["p50"] > 0
        # A durable response cannot be faster than the upstream call it wraps.
        assert o["agentrunner"]["p50"] > o["direct"]["p50"]
    assert r["overhead"]["500ms"]["direct"]["p50"] >= 500
    assert 0 < r["phases"]["model_call_step"] < r["phases"]["total"]
    assert [row["steps"] for row in r["steps"]["rows"]] == [1, 3]
    # Fitted, not judged: two smoke samples per point are too few to time a ~25 ms step.
    assert isinstance(r["steps"]["fit_p50"]["agentrunner"]["slope"], float)
    assert all(row["errors"] == 0 and row["per_second"] > 0 for row in r["throughput"]["rows"])
    assert r["memory"]["in_flight"] == 10 and r["memory"]["in_flight_total_mib"] > 0
    assert r["streaming"]["first_token_ms"]["agentrunner"]["n"] == 3
    # Big payloads stay in PostgreSQL: a 100 kB answer barely changes the history; each step adds a constant.
    assert r["history"]["payload_leak_ratio"] < 1.1
    assert r["history"]["fit"]["r2"] > 0.99
    assert [row["calls"] for row in r["mcp"]["rows"]] == [1, 3]
    assert r["mcp"]["rows"][1]["agentrunner"]["p50"] > r["mcp"]["rows"][0]["agentrunner"]["p50"] > 0
    ser = r["serialization"]
    assert ser["streamed_3_steps"]["objects"] > ser["blocking"]["objects"] > 0
    assert 0 < ser["blocking"]["p50_us"] < ser["streamed_3_steps"]["p50_us"]
    for name in ("results.md", "latency-vs-steps.png", "throughput-vs-workers.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.timeout(300)
def test_bench_pair_compares_two_checkouts(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench.pair", str(ROOT), str(ROOT), "--rounds", "1", "--window", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    windows = [line for line in done.stdout.splitlines() if line.startswith("round 0 ")]
    assert len(windows) == 2
    for line in windows:
        assert float(line.split(": ")[1].split("/s")[0]) > 0
    rows = [line for line in done.stdout.splitlines() if line.startswith(f"| {ROOT} |")]
    assert len(rows) == 2  # one per checkout, with its mean and CPU split
