"""Worker process: the composition root for workflows and activities (`python worker.py`)."""

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.model_call import ModelCallActivity
from activities.response_state import ResponseStateActivities
from activities.tool_call import ToolCallActivity
from core.settings import Settings
from db.engine import create_engine, session_factory
from stack.temporal import connect_temporal
from workflows.response import ResponseWorkflow

log = logging.getLogger("agentrunner.worker")


def build_worker(client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession],
                 http: httpx.AsyncClient,
                 *, task_queue: str | None = None, max_concurrent_activities: int = 100,
                 max_concurrent_workflow_tasks: int = 100) -> Worker:
    """A worker serving the response workflow and its activities."""
    model = ModelCallActivity(sessions, http, settings)
    tools = ToolCallActivity(sessions, http)
    state = ResponseStateActivities(sessions)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[ResponseWorkflow],
        activities=[model.call_model, tools.call_tool, state.mark_in_progress, state.finalize],
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
    )


async def run_worker(settings: Settings, *, task_queue: str | None = None, max_concurrent_activities: int = 100,
                     max_concurrent_workflow_tasks: int = 100) -> None:
    """Run a worker until SIGINT/SIGTERM."""
    client = await connect_temporal(settings)
    engine = create_engine(settings, pool_size=max(2, min(max_concurrent_activities, 20)))
    # No transport retries: Temporal owns retries.
    async with httpx.AsyncClient(timeout=settings.upstream_timeout_seconds) as http:
        worker = build_worker(client, settings, session_factory(engine), http, task_queue=task_queue,
                              max_concurrent_activities=max_concurrent_activities,
                              max_concurrent_workflow_tasks=max_concurrent_workflow_tasks)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            log.info("worker polling task queue %s", task_queue or settings.task_queue)
            await stop.wait()
    await engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    """`python worker.py [--task-queue Q] [--max-concurrent-activities N] …`."""
    parser = argparse.ArgumentParser(description="agentrunner worker")
    parser.add_argument("--task-queue", default=None)
    parser.add_argument("--max-concurrent-activities", type=int, default=100)
    parser.add_argument("--max-concurrent-workflow-tasks", type=int, default=100)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_worker(Settings(), task_queue=args.task_queue,
                           max_concurrent_activities=args.max_concurrent_activities,
                           max_concurrent_workflow_tasks=args.max_concurrent_workflow_tasks))


if __name__ == "__main__":
    main()
