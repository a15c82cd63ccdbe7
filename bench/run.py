"""Run every benchmark side by side and write bench/results/ (JSON, markdown, plots).

`make bench` runs this with the defaults: our own stack on embedded defaults, the scripted upstream in its own
process, and two peers: LiteLLM's proxy when bench/.peer holds it, ogx when bench/.ogx does (a peer that is absent,
or turned off with `--litellm none` / `--ogx none`, is shown as "—"). `--smoke` shrinks every count (the tests
run it). `--base-url/--api-key/--admin-token` measure a running stack instead; the sections that need to
own the processes (throughput vs workers, memory) are then skipped.
"""

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from bench.measure import Target
from bench.report import write_report
from bench.sections import SMOKE, Bench, Counts, peer_models
from bench.stack import ROOT, OgxPeer, OurStack, Peer, Upstream
from core.settings import Settings


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory_gib": round(mem / 2**20, 1),
            "python": platform.python_version(), "temporalio": metadata.version("temporalio"),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start what is needed, measure every section, stop everything."""
    counts = SMOKE if args.smoke else Counts()
    if args.concurrency:
        counts = dataclasses.replace(counts, concurrency=args.concurrency)
    upstream = Upstream.start(peer_models())  # before ogx, which registers the models it lists at start
    stack = peer = ogx = None
    exit_stack = ExitStack()
    try:
        if args.base_url:
            base_url, api_key, admin_token = args.base_url, args.api_key, args.admin_token
            settings = Settings()
        else:
            stack = await OurStack.start(workers=2)
            base_url, api_key, admin_token = stack.base_url, stack.api_key, str(stack.settings.admin_token)
            settings = stack.settings
        litellm = Path(args.litellm)
        if args.litellm != "none" and litellm.exists():
            peer = Peer.start(litellm, upstream.url, Path(exit_stack.enter_context(tempfile.TemporaryDirectory())))
        ogx_bin = Path(args.ogx)
        if args.ogx != "none" and ogx_bin.exists():
            ogx = OgxPeer.start(ogx_bin, upstream.url,
                                Path(exit_stack.enter_context(tempfile.TemporaryDirectory(prefix="ogx-bench-"))))
        # "peer" stays LiteLLM's key (as in earlier results); ogx's figures are under "ogx".
        result: dict[str, Any] = {"machine": machine(), "smoke": args.smoke,
                                  "peer": {"name": "LiteLLM proxy", "version": peer.version} if peer else None,
                                  "ogx": {"name": "ogx", "version": ogx.version} if ogx else None}
        peers = [*([Target("peer", peer.base_url)] if peer else []),
                 *([Target("ogx", ogx.base_url, model_prefix=ogx.model_prefix)] if ogx else [])]
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=200)) as http:
            bench = Bench(http, Target("agentrunner", base_url, {"Authorization": f"Bearer {api_key}"}),
                          upstream.url, peers, counts, (base_url, admin_token), settings)
            sections: dict[str, Callable[[], Awaitable[Any]]] = {
                "overhead": bench.overhead, "phases": bench.phases, "steps": bench.steps,
                "streaming": bench.streaming,
                "history": bench.history, "mcp": bench.mcp, "serialization": bench.serialization}
            if stack:  # these need to own the processes
                sections |= {"memory": lambda: bench.memory(stack, workers=2),
                             "throughput": lambda: bench.throughput(stack)}
                if args.profile:
                    sections["profile"] = lambda: bench.profile(stack, Path(args.out))
            async with asyncio.timeout(args.max_minutes * 60):
                for name, section in sections.items():
                    if not args.only or name in args.only.split(","):
                        result[name] = await _timed(name, section())
        return result
    finally:
        if ogx:
            ogx.stop()
        if peer:
            peer.stop()
        if stack:
            stack.stop()
        upstream.proc.terminate()
        exit_stack.close()


async def _timed(name: str, work: Any) -> Any:
    start = time.monotonic()
    print(f"{name} …", flush=True)
    out = await work
    print(f"{name} done in {time.monotonic() - start:.0f} s", flush=True)
    return out


def main() -> None:
    """Parse arguments, run, write bench/results/."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny counts, to check the harness works")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--litellm", default=str(ROOT / "bench" / ".peer" / "bin" / "litellm"),
                   help="the LiteLLM peer's `litellm` executable, or 'none'")
    p.add_argument("--ogx", default=str(ROOT / "bench" / ".ogx" / "bin" / "ogx"),
                   help="the ogx peer's `ogx` executable, or 'none'")
    p.add_argument("--profile", action="store_true", help="also record py-spy profiles of the API and a worker")
    p.add_argument("--concurrency", type=int, help="clients in the throughput section (default 32)")
    p.add_argument("--only", help="comma-separated sections to run (default: all)")
    p.add_argument("--max-minutes", type=float, default=30, help="give up after this long")
    p.add_argument("--base-url", help="measure a running stack instead of starting one")
    p.add_argument("--api-key")
    p.add_argument("--admin-token")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args))
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(result, out)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
