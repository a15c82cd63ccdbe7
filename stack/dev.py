"""`agentrunner dev`: the whole stack on embedded defaults, in one foreground command."""

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from api.routes.codec import CODEC_PATH
from core.fetch_policy import LOOPBACK
from core.settings import Settings
from core.temporal import connect_temporal, ensure_search_attributes
from db.catalog import create_api_key
from db.engine import create_engine, database_url, session_factory
from db.migrate import migrate
from stack.postgres import with_database
from stack.temporal import port_in_use, start_dev_server, wait_for_port

DEV_OWNER = "dev"


def dev_credentials(state_dir: Path) -> dict[str, str]:
    """The dev API key and admin token, made once and kept in the state dir."""
    path = state_dir / "dev-credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    creds = {"api_key": "sk-ar-dev-" + secrets.token_urlsafe(24), "admin_token": "adm-" + secrets.token_urlsafe(24)}
    path.write_text(json.dumps(creds, indent=2))
    path.chmod(0o600)
    return creds


async def prepare_database(settings: Settings, api_key: str) -> list[str]:
    """Run migrations and make sure the dev key exists; returns migrations applied now."""
    engine = create_engine(settings, pool_size=1)
    try:
        applied = await migrate(engine)
        async with session_factory(engine)() as s:
            await create_api_key(s, DEV_OWNER, "dev", secret=api_key)  # None: it exists from an earlier run
        return applied
    finally:
        await engine.dispose()


async def _register_search_attributes(settings: Settings) -> list[str]:
    added = await ensure_search_attributes(await connect_temporal(settings), settings.temporal_namespace)
    return [f"search attribute {name}" for name in added]


def codec_endpoint(settings: Settings) -> str:
    """The API's codec routes as the dev server's Web UI calls them, from a browser on this machine."""
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{host}:{settings.api_port}{CODEC_PATH}"


def codec_env(settings: Settings) -> dict[str, str]:
    """The API settings the dev UI's codec needs, unless the operator set them: loopback callers are let in without
    a token, and the UI's origins get CORS."""
    port = settings.temporal_ui_port
    wanted = {"AGENTRUNNER_CODEC_ALLOW_LOOPBACK": "true",
              "AGENTRUNNER_CODEC_CORS_ORIGINS": json.dumps([f"http://127.0.0.1:{port}", f"http://localhost:{port}"])}
    return {name: value for name, value in wanted.items() if name not in os.environ}


def _banner(settings: Settings, creds: dict[str, str], db_url: str, metrics_ports: list[int]) -> str:
    base = f"http://{settings.api_host}:{settings.api_port}"
    key = creds["api_key"]
    return f"""
agentrunner is running
  API           {base}/v1
  Temporal UI   http://127.0.0.1:{settings.temporal_ui_port}  (decodes step content through {codec_endpoint(settings)})
  Metrics       {base}/metrics{"".join(f", 127.0.0.1:{p}/metrics" for p in metrics_ports)}
  Database      {db_url}
  API key       {key}
  Admin token   {creds['admin_token']}
  Model         {settings.scripted_model}  (built-in scripted model, offline)

Try it:
  curl -s {base}/v1/responses -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "{settings.scripted_model}", "input": "Hello!"}}'

  python -c "from openai import OpenAI; c = OpenAI(base_url='{base}/v1', api_key='{key}'); \\
print(c.responses.create(model='{settings.scripted_model}', input='Hello!').output_text)"

Ctrl-C stops everything; state is kept in {settings.state_dir.resolve()}.
"""


def _metrics_ports(workers: int, first: int) -> list[int]:
    """Each dev worker serves Prometheus metrics on its own port: first, first + 1, … (none when first is 0)."""
    return [first + i for i in range(workers)] if first else []


def external_temporal() -> bool:
    """Whether the user pointed us at a Temporal of their own."""
    return any(name in os.environ for name in ("TEMPORAL_ADDRESS", "AGENTRUNNER_TEMPORAL_ADDRESS"))


def run_dev(settings: Settings, workers: int = 2, temporal_port: int = 7233, metrics_port: int = 9101) -> int:
    """Start PostgreSQL, Temporal, the API and workers; stop them all on Ctrl-C."""
    ours = [settings.api_port, *_metrics_ports(workers, metrics_port)]
    if not external_temporal():
        ours += [temporal_port, settings.temporal_ui_port]
    busy = [port for port in ours if port_in_use("127.0.0.1", port)]
    if busy:
        print(f"port(s) {busy} already in use (another `agentrunner dev`?); stop it first", flush=True)
        return 1
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    logs = settings.state_dir / "logs"
    logs.mkdir(exist_ok=True)
    creds = dev_credentials(settings.state_dir)
    settings = with_database(settings)  # starts embedded PostgreSQL unless DATABASE_URL is set
    db_url = database_url(settings)
    children: list[subprocess.Popen[bytes]] = []
    if not external_temporal():
        settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{temporal_port}"})
        print("starting Temporal dev server …", flush=True)
        children.append(start_dev_server(settings, logs / "temporal.log", ui_codec_endpoint=codec_endpoint(settings)))
    try:
        applied = asyncio.run(prepare_database(settings, creds["api_key"]))
        applied += asyncio.run(_register_search_attributes(settings))
        if applied:
            print(f"applied migrations: {', '.join(applied)}", flush=True)
        # `dev` may reach loopback MCP servers and tools unless the operator set a policy of their own.
        fetch = {} if settings.fetch.allowed_hosts or settings.fetch.allowed_networks else LOOPBACK.env()
        env = {**os.environ, **fetch, **codec_env(settings), "DATABASE_URL": db_url,
               "TEMPORAL_ADDRESS": settings.temporal_address,
               "AGENTRUNNER_ADMIN_TOKEN": creds["admin_token"],
               "AGENTRUNNER_STATE_DIR": str(settings.state_dir.resolve())}
        children.append(subprocess.Popen([sys.executable, "-m", "stack.cli", "api"], env=env))
        for port in _metrics_ports(workers, metrics_port) or [0] * workers:
            children.append(subprocess.Popen([sys.executable, "-m", "worker"],
                                             env={**env, "AGENTRUNNER_WORKER_METRICS_PORT": str(port)}))
        wait_for_port(settings.api_host, settings.api_port, timeout=60)
        print(_banner(settings, creds, db_url, _metrics_ports(workers, metrics_port)), flush=True)
        return _wait_for_exit(children)
    finally:
        _stop(children)


def _wait_for_exit(children: list[subprocess.Popen[bytes]]) -> int:
    stop = False

    def _on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        while not stop:
            for child in children:
                if child.poll() is not None:
                    # Ctrl-C in a terminal reaches the children too; a clean exit is a shutdown, not a crash.
                    clean = child.returncode in (0, -signal.SIGINT, -signal.SIGTERM)
                    print(f"process {child.args!r} exited with {child.returncode}; stopping", flush=True)
                    return 0 if clean else 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    return 0


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every child (API and workers first, Temporal last), then kill stragglers."""
    # A terminal's Ctrl-C reaches make and us more than once; a second one must not cut the cleanup short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in reversed(children):
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
    print("stopped", flush=True)
