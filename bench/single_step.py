"""Wall time of single-step blocking responses against a running stack (e.g. `make dev`).

Usage: python bench/single_step.py --base-url http://127.0.0.1:8000 --api-key KEY [--n 20] [--model M]
The default model is the built-in scripted one, which answers with zero latency.
"""

import argparse
import statistics
import time

import httpx


def main() -> None:
    """Send N sequential blocking requests and print median/p90/min/max in milliseconds."""
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", required=True)
    p.add_argument("--model", default="agentrunner-scripted")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()
    timings = []
    with httpx.Client(base_url=args.base_url, headers={"Authorization": f"Bearer {args.api_key}"},
                      timeout=60) as http:
        for i in range(args.warmup + args.n):
            start = time.perf_counter()
            r = http.post("/v1/responses", json={"model": args.model, "input": f"ping {i}"})
            elapsed = (time.perf_counter() - start) * 1000
            r.raise_for_status()
            assert r.json()["status"] == "completed"
            if i >= args.warmup:
                timings.append(elapsed)
    timings.sort()
    print(f"n={len(timings)} median={statistics.median(timings):.1f}ms "
          f"p90={timings[int(len(timings) * 0.9) - 1]:.1f}ms min={timings[0]:.1f}ms max={timings[-1]:.1f}ms")


if __name__ == "__main__":
    main()
