"""Two checkouts side by side: single-step throughput and CPU per response, in alternating windows.

    python -m bench.pair /tmp/before /tmp/after [--rounds 8] [--window 12]

Each directory is a checkout (`git worktree add /tmp/before <commit>`). Both stacks (embedded PostgreSQL, a
Temporal dev server, the API and one worker, and a scripted upstream each) run from their own code at once; 32
clients load one at a time for `--window` seconds, taking turns (ABBA…), while the other idles; a short window on
each first is not counted. Sequential runs of `make bench` drift by ±8 % on this shared VM within minutes;
alternating short windows cancels most of that drift, which is how the README's lever table measured its last
levers. An older checkout's own `bench/stack.py` starts its stack.
"""

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.measure import closed_loop
from bench.stack import OurStack, Upstream, cpu_split
from bench.upstream import Behaviour

PARTS = ("api", "workers", "temporal", "postgres", "machine")


async def hold(out: Path) -> None:
    """Start the current directory's stack with one worker and the bench model, write where it is, run until
    SIGTERM."""
    upstream = Upstream.start([])
    try:
        await _serve(out, upstream)
    finally:
        upstream.proc.terminate()


async def _serve(out: Path, upstream: Upstream) -> None:
    stack = await OurStack.start(workers=1)
    try:
        model = Behaviour().model
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(stack.base_url + "/admin/models",
                                json={"alias": model, "base_url": upstream.url + "/v1"},
                                headers={"Authorization": f"Bearer {stack.settings.admin_token}"})
            r.raise_for_status()
        out.write_text(json.dumps({"base_url": stack.base_url, "api_key": stack.api_key, "model": model,
                                   "processes": stack.pids(), "services": stack.services}))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    finally:
        stack.stop()


async def _window(http: httpx.AsyncClient, stack: dict[str, Any], seconds: float) -> tuple[float, dict[str, float]]:
    """Responses per second and CPU ms per response of one loaded window."""
    body, headers = {"model": stack["model"], "input": "go"}, {"Authorization": f"Bearer {stack['api_key']}"}

    async def one() -> None:
        r = await http.post(stack["base_url"] + "/v1/responses", json=body, headers=headers)
        r.raise_for_status()
        if r.json()["status"] != "completed":
            raise RuntimeError(f"response ended {r.json()['status']}")

    loop = await closed_loop(one, 32, seconds, warmup=3.0,
                             probe=lambda: cpu_split(stack["processes"], stack["services"]))
    return loop.per_second, loop.probed_ms_per_request()


async def compare(dirs: list[Path], rounds: int, window: float) -> None:
    """Start a stack per checkout, alternate loaded windows between them, print each window and the means."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-pair-"))
    holders = []
    for i, d in enumerate(dirs):
        # This file, with the checkout first on the path (`-c` puts the working directory there; running the file
        # itself would put bench/ there, where `stack` is bench/stack.py).
        run = (f"import runpy, sys; sys.argv = ['bench.pair', '--hold', {str(tmp / f'{i}.json')!r}]; "
               f"runpy.run_path({__file__!r}, run_name='__main__')")
        holders.append(subprocess.Popen([sys.executable, "-c", run], cwd=d,
                                        stdout=(tmp / f"{i}.log").open("w"), stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 180
        while not all((tmp / f"{i}.json").exists() for i in range(len(dirs))):
            if time.monotonic() > deadline or any(h.poll() is not None for h in holders):
                raise RuntimeError(f"a stack did not start: see {tmp}")
            await asyncio.sleep(0.5)
        stacks = [json.loads((tmp / f"{i}.json").read_text()) for i in range(len(dirs))]
        results: list[list[tuple[float, dict[str, float]]]] = [[] for _ in dirs]
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=200)) as http:
            for stack in stacks:  # warms connections and caches; not counted
                await _window(http, stack, 3.0)
            for r in range(rounds):
                order = list(range(len(dirs)))
                for i in order if r % 2 == 0 else order[::-1]:
                    rate, cpu = await _window(http, stacks[i], window)
                    results[i].append((rate, cpu))
                    print(f"round {r} {dirs[i]}: {rate:.1f}/s " + " ".join(f"{k} {cpu[k]:.1f}" for k in PARTS),
                          flush=True)
        print("\n| checkout | responses/s (mean) | higher in | CPU ms per response: " + " / ".join(PARTS) + " |")
        print("|---|---|---|---|")
        for i, d in enumerate(dirs):
            wins = sum(all(res[0] > other[n][0] for j, other in enumerate(results) if j != i)
                       for n, res in enumerate(results[i]))
            print(f"| {d} | {statistics.mean(x[0] for x in results[i]):.1f} | {wins} of {rounds} | "
                  + " / ".join(f"{statistics.mean(x[1][k] for x in results[i]):.2f}" for k in PARTS) + " |")
    finally:
        for h in holders:
            h.terminate()
        for h in holders:
            h.wait(60)
    shutil.rmtree(tmp)  # the stacks' logs stay only when one failed


def main() -> None:
    """Parse the arguments and run."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="*", type=Path, help="checkouts to compare (two or more)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--window", type=float, default=12.0, help="seconds of load per window")
    p.add_argument("--hold", type=Path, help=argparse.SUPPRESS)  # internal: run one stack
    args = p.parse_args()
    if args.hold:
        asyncio.run(hold(args.hold))
    elif len(args.dirs) < 2:
        p.error("give two or more checkouts")
    else:
        asyncio.run(compare([d.resolve() for d in args.dirs], args.rounds, args.window))


if __name__ == "__main__":
    main()
