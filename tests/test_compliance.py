"""The public Open Responses compliance suite (`llm-comply`, pinned in the test extra) against the running API."""

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from tests.conftest import Stack
from tests.scripted_upstream import Reply

# The suite runs its reasoning test only for model names of reasoning models (o1/o3/o4/gpt-5/deepseek-r).
REASONING_TEST = "reasoning-summary"


async def comply(stack: Stack, model: str, *only: str) -> dict[str, Any]:
    """Run the suite (or some of its tests) against the stack's API; its JSON report."""
    llm_comply = shutil.which("llm-comply") or str(Path(sys.executable).parent / "llm-comply")
    args = ["run", "-u", stack.url + "/v1", "-k", await stack.new_key(), "-m", model, "--json", "--timeout", "30"]
    if only:
        args += ["-f", ",".join(only)]
    # Not subprocess.run: the API under test serves from this event loop.
    proc = await asyncio.create_subprocess_exec(llm_comply, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=100)
    assert out, err.decode()[-2000:]
    report: dict[str, Any] = json.loads(out)
    return report


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["status"] if r["status"] != "failed" else f"failed: {r.get('errors')}"
            for r in report["results"]}


async def test_open_responses_compliance_suite_13_of_13(stack: Stack) -> None:
    # Everything with the built-in scripted model; its reasoning test skips itself for that name.
    everything = outcomes(await comply(stack, stack.settings.scripted_model))
    assert len(everything) == 13
    assert everything.pop(REASONING_TEST) == "skipped"
    assert set(everything.values()) == {"passed"}, {k: v for k, v in everything.items() if v != "passed"}
    # The reasoning test against an alias named like a reasoning model whose upstream reasons.
    upstream_model = stack.upstream.script(Reply(text="555", reasoning="15 * 37 = 15 * 30 + 15 * 7 = 555."))
    alias = f"gpt-5-{upstream_model}"
    await stack.admin("POST", "/admin/models", {"alias": alias, "base_url": stack.upstream.base_url + "/v1",
                                                "upstream_model": upstream_model})
    assert outcomes(await comply(stack, alias, REASONING_TEST)) == {REASONING_TEST: "passed"}
    asked = stack.upstream.scripts[upstream_model].requests[0]
    assert asked["reasoning_effort"] == "low"
