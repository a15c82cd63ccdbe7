"""Time from the upstream's first token to the client's first delta, through a running stack (`make dev`).

Starts the scripted upstream in this process (so both instants are read from one clock), registers it as a
model alias through the admin API, and streams N responses. Reference: the same stream read straight from
the upstream. Usage: python bench/first_token.py [--n 20] [--state-dir .agentrunner]
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers import serve
from tests.scripted_upstream import Reply, ScriptedUpstream

TEXT = " ".join(f"word{i}" for i in range(10))


async def first_delta(http: httpx.AsyncClient, url: str, body: dict[str, object], headers: dict[str, str],
                      marker: str) -> float:
    """Monotonic time at which the first text delta arrived."""
    async with http.stream("POST", url, json=body, headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data:") and marker in line:
                return time.monotonic()
    raise RuntimeError("no delta")


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--state-dir", default=".agentrunner")
    p.add_argument("--n", type=int, default=20)
    args = p.parse_args()
    creds = json.loads((Path(args.state_dir) / "dev-credentials.json").read_text())
    up = ScriptedUpstream()
    async with serve(up.app) as up_url, httpx.AsyncClient(timeout=60) as http:
        up.base_url = up_url
        ours, direct = [], []
        for _ in range(args.n):
            model = up.script(Reply(text=TEXT, token_delay=0.02))
            r = await http.post(f"{args.base_url}/admin/models", json={"alias": model, "base_url": up_url + "/v1"},
                                headers={"Authorization": f"Bearer {creds['admin_token']}"})
            r.raise_for_status()
            got = await first_delta(http, f"{args.base_url}/v1/responses",
                                    {"model": model, "input": "go", "stream": True},
                                    {"Authorization": f"Bearer {creds['api_key']}"}, "response.output_text.delta")
            ours.append((got - up.scripts[model].token_times[0]) * 1000)
            reference = up.script(Reply(text=TEXT, token_delay=0.02))
            got = await first_delta(http, f"{up_url}/v1/chat/completions",
                                    {"model": reference, "messages": [], "stream": True}, {}, "word0")
            direct.append((got - up.scripts[reference].token_times[0]) * 1000)
    for name, xs in (("agentrunner", ours), ("upstream directly", direct)):
        print(f"{name:18} first token -> first client delta: median {statistics.median(xs):6.1f} ms, "
              f"min {min(xs):6.1f}, max {max(xs):6.1f} (n={len(xs)})")


if __name__ == "__main__":
    asyncio.run(main())
