"""The public Open Responses compliance suite (`llm-comply`, pinned in the test extra) against the running API."""

import asyncio
import json
import shutil
import sys
from pathlib import Path

from tests.conftest import Stack

# The suite runs its reasoning test only for model names of reasoning models (o1/o3/o4/gpt-5/deepseek-r);
# reasoning output items are still to come (issue 10), so it runs with the built-in model and is skipped.
SKIPPED = {"reasoning-summary"}


async def test_open_responses_compliance_suite(stack: Stack) -> None:
    llm_comply = shutil.which("llm-comply") or str(Path(sys.executable).parent / "llm-comply")
    # Not subprocess.run: the API under test serves from this event loop.
    proc = await asyncio.create_subprocess_exec(
        llm_comply, "run", "-u", stack.url + "/v1", "-k", await stack.new_key(), "-m", stack.settings.scripted_model,
        "--json", "--timeout", "30", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=100)
    report = json.loads(out)
    failed = {r["id"]: r.get("errors") for r in report["results"] if r["status"] not in ("passed", "skipped")}
    assert failed == {}, (failed, err.decode()[-2000:])
    assert {r["id"] for r in report["results"] if r["status"] == "skipped"} == SKIPPED
    assert report["summary"]["total"] == 13 and report["summary"]["passed"] == 13 - len(SKIPPED)
