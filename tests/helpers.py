"""Helpers shared by the test modules: polling with a deadline, an in-loop uvicorn server, child processes,
and the create/read shortcuts of the Responses API.

conftest imports this module, so it refers to conftest's Stack only for type checking (no import cycle).
"""

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import uvicorn

from tests.wire import assert_wire

if TYPE_CHECKING:
    from tests.conftest import Stack

T = TypeVar("T")


def repo_root() -> Path:
    """The project folder (for subprocesses)."""
    return Path(__file__).resolve().parent.parent


def text_of(body: dict[str, Any]) -> str:
    """The text of a Response object's output messages, joined."""
    return "".join(p["text"] for i in body["output"] if i["type"] == "message" for p in i["content"])


async def create(stack: "Stack", key: str, **fields: Any) -> dict[str, Any]:
    """POST /v1/responses with these fields; fails the test unless it answers 200."""
    r = await stack.call("POST", "/v1/responses", key, fields)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert_wire(body, "response")
    return body


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Python child process in the project folder, output to `log`, always reaped (SIGKILL if still alive)."""
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, *args], env=env, cwd=repo_root(), stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.05,
                     what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Tests run several servers in one loop; signals stay with pytest.
        yield


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on 127.0.0.1 (free port) in this loop; yields its base URL."""
    server = _QuietServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server, task), timeout=30, interval=0.01, what="server start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # surface the startup error
    return server.started


NODE_DIR = repo_root() / "tests" / "node"  # the Vercel AI SDK client scripts


def node_ready() -> bool:
    """Whether node and the AI SDK packages are installed (make test installs them)."""
    return shutil.which("node") is not None and (NODE_DIR / "node_modules" / "ai").exists()

