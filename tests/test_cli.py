"""The `agentrunner` command as a user runs it."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from stack.temporal import port_in_use
from tests.helpers import eventually, free_port, process, repo_root


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack.cli", *args], env=env, cwd=repo_root(),
                          capture_output=True, text=True, timeout=60)


async def test_migrate_and_admin_commands(base_settings: Settings, db_engine: Any, temporal_address: str) -> None:
    assert base_settings.database_url
    env = {**os.environ, "DATABASE_URL": base_settings.database_url, "TEMPORAL_ADDRESS": temporal_address}
    assert cli("migrate", env=env).stdout.strip() == "database is up to date"
    added = cli("admin", "add-tool", "cli_tool", "--url", "http://127.0.0.1:9/x", "--timeout", "3",
                "--parameters", '{"type":"object","properties":{}}', "--secret-header", "X-Secret=s3", env=env)
    assert added.returncode == 0, added.stderr
    listed = cli("admin", "list-tools", env=env).stdout
    # The same shape as GET /admin/tools: the secret header's name, never its value.
    assert {"name": "cli_tool", "url": "http://127.0.0.1:9/x", "description": "", "timeout_seconds": 3.0,
            "parameters": {"type": "object", "properties": {}}, "secret_header_name": "X-Secret"} in json.loads(listed)
    assert "s3" not in listed
    bad = cli("admin", "add-model", "bad-model", "--base-url", "ftp://127.0.0.1/v1", env=env)
    assert bad.returncode == 2 and "http(s) URL" in bad.stderr
    assert cli("admin", "add-model", "cli-model", "--base-url", "http://127.0.0.1:9/v1", env=env).returncode == 0
    assert "cli-model" in [m["alias"] for m in json.loads(cli("admin", "list-models", env=env).stdout)]
    key = json.loads(cli("admin", "create-key", "--owner", "cli-owner", env=env).stdout)
    assert key["key"].startswith("sk-ar-") and key["owner_id"] == "cli-owner"
    assert cli("admin", "remove-tool", "cli_tool", env=env).returncode == 0
    missing = cli("admin", "remove-tool", "cli_tool", env=env)
    assert missing.returncode == 2 and "No tool" in missing.stderr
    granted = cli("admin", "grant", "model", "cli-model", "cli-owner", env=env)
    assert granted.returncode == 0, granted.stderr
    assert {"kind": "model", "name": "cli-model", "owner_id": "cli-owner"} in json.loads(
        cli("admin", "list-grants", env=env).stdout)
    assert cli("admin", "revoke-grant", "model", "cli-model", "cli-owner", env=env).returncode == 0
    assert cli("admin", "revoke-grant", "model", "cli-model", "cli-owner", env=env).returncode == 2
    assert cli("admin", "grant", "gadget", "x", "y", env=env).returncode == 2  # not a kind
    server = cli("admin", "add-mcp-server", "cli-mcp", "--url", "http://127.0.0.1:9/mcp", "--header", "X-K=v1",
                 env=env)
    assert server.returncode == 0, server.stderr
    listed = cli("admin", "list-mcp-servers", env=env).stdout
    assert {"label": "cli-mcp", "url": "http://127.0.0.1:9/mcp", "header_names": ["X-K"],
            "description": ""} in json.loads(listed) and "v1" not in listed
    assert cli("admin", "remove-mcp-server", "cli-mcp", env=env).returncode == 0
    assert cli("admin", "remove-model", "cli-model", env=env).returncode == 0


@pytest.mark.stack  # `agentrunner dev` starts its own PostgreSQL and Temporal
@pytest.mark.timeout(240)
async def test_dev_starts_the_whole_stack_and_keeps_state(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "GOMAXPROCS")}
    api_port, ui_port, temporal_port = free_port(), free_port(), free_port()
    env |= {"AGENTRUNNER_STATE_DIR": str(tmp_path / "state"), "AGENTRUNNER_API_PORT": str(api_port),
            "AGENTRUNNER_TEMPORAL_UI_PORT": str(ui_port)}
    metrics_port = free_port()
    args = ["-m", "stack.cli", "dev", "--temporal-port", str(temporal_port), "--workers", "1",
            "--worker-metrics-port", str(metrics_port)]
    base = f"http://127.0.0.1:{api_port}"

    async def run_once(log: Path, work: Any) -> None:
        with process(args, env, log) as dev:
            async def banner() -> str | None:
                assert dev.poll() is None, log.read_text()
                out = log.read_text()
                return out if "agentrunner is running" in out else None

            out = await eventually(banner, timeout=120, interval=0.2, what="dev banner")
            key = re.search(r"API key\s+(\S+)", out)
            assert key, out
            assert f"http://127.0.0.1:{ui_port}" in out and "curl" in out and "OpenAI(base_url=" in out
            async with httpx.AsyncClient(timeout=60) as http:
                await work(http, key.group(1))
            dev.send_signal(signal.SIGINT)
            assert dev.wait(timeout=60) == 0
        assert "stopped" in log.read_text()

    created: dict[str, Any] = {}

    async def first(http: httpx.AsyncClient, key: str) -> None:
        r = await http.post(base + "/v1/responses", headers={"Authorization": f"Bearer {key}"},
                            json={"model": "agentrunner-scripted", "input": "Hello!"})
        assert r.status_code == 200, r.text
        created.update(r.json())
        assert created["status"] == "completed" and "Hello!" in created["output"][0]["content"][0]["text"]
        assert (await http.get(f"http://127.0.0.1:{ui_port}/")).status_code == 200
        # The dev UI decodes through the API's codec, which trusts this loopback caller without a token.
        ui_settings = (await http.get(f"http://127.0.0.1:{ui_port}/api/v1/settings")).json()
        assert ui_settings["Codec"]["Endpoint"] == base + "/codec"
        assert (await http.post(base + "/codec/decode", json={"payloads": []})).json() == {"payloads": []}
        assert "agentrunner_http_requests_total" in (await http.get(base + "/metrics")).text
        worker_metrics = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert 'agentrunner_model_call_seconds_count{model="agentrunner-scripted"} 1.0' in worker_metrics
        # The dev server leaves the other half of the cores to the API, the workers and PostgreSQL.
        [server] = [p for p in Path("/proc").glob("[0-9]*") if _is_dev_server(p, temporal_port)]
        environ = dict(v.split("=", 1) for v in (server / "environ").read_text().split("\0") if "=" in v)
        assert environ["GOMAXPROCS"] == str(max(1, len(os.sched_getaffinity(0)) // 2))
        # … and checkpoints its SQLite WAL every 10,000 pages, not every 1,000 (stack/temporal.py).
        assert "wal_autocheckpoint=10000" in (server / "cmdline").read_text().split("\0")

    async def second(http: httpx.AsyncClient, key: str) -> None:
        r = await http.get(f"{base}/v1/responses/{created['id']}", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json() == created

    await run_once(tmp_path / "dev1.log", first)
    await run_once(tmp_path / "dev2.log", second)
    for port in (api_port, ui_port, temporal_port, metrics_port):
        assert not port_in_use("127.0.0.1", port), f"port {port} still served after Ctrl-C"


def _is_dev_server(proc: Path, port: int) -> bool:
    """Whether /proc/<pid> is a `temporal server start-dev` serving on this port."""
    try:
        args = (proc / "cmdline").read_text().split("\0")
    except OSError:  # gone meanwhile
        return False
    return "start-dev" in args and str(port) in args
