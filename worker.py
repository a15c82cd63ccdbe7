"""Worker process: the composition root for workflows and activities (`python worker.py`)."""

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta

import httpx
import uvloop
from prometheus_client import start_http_server
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.catalog_cache import CatalogCache
from activities.compaction import CompactionActivities
from activities.heartbeat import StepGuard
from activities.mcp_tools import McpActivities
from activities.model_call import ModelCallActivity
from activities.notifier import EventNotifier
from activities.response_state import ResponseStateActivities
from activities.tool_call import ToolCallActivity
from core.logging import configure_logging
from core.metrics import Metrics
from core.process import exit_after_shutdown, settle_heap
from core.settings import Settings
from core.temporal import connect_temporal
from db.engine import create_engine, database_url, session_factory
from workflows.compaction import CompactionWorkflow
from workflows.response import ResponseWorkflow, ResponseWorkflowV2

log = logging.getLogger("agentrunner.worker")


def build_worker(client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession],
                 http: httpx.AsyncClient, metrics: Metrics, notifier: EventNotifier, *, task_queue: str | None = None,
                 max_concurrent_activities: int = 100, max_concurrent_workflow_tasks: int = 100) -> Worker:
    """A worker serving the response workflow and its activities on one task queue."""
    guard = StepGuard(notifier, sessions)
    catalog = CatalogCache(notifier, settings.catalog_cache_seconds)
    model = ModelCallActivity(sessions, http, settings, metrics, guard, catalog)
    tools = ToolCallActivity(sessions, http, metrics, settings, guard, catalog)
    mcp = McpActivities(sessions, settings)
    state = ResponseStateActivities(sessions, metrics)
    compaction = CompactionActivities(sessions, http, settings)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[ResponseWorkflowV2, ResponseWorkflow, CompactionWorkflow],
        # Our workflow code is deterministic by construction (workflows/ imports no I/O library:
        # tests/unit/test_imports.py) and the replay test guards it; the sandbox's per-run module environment cost
        # CPU on every workflow task without catching anything those do not.
        workflow_runner=UnsandboxedWorkflowRunner(),
        activities=[model.call_model, tools.call_tool, state.mark_in_progress, state.finalize,
                    compaction.summarize, compaction.fail, compaction.compact_context, mcp.list_tools],
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_local_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        # On SIGTERM in-flight activities get this long to finish; what does not is retried on another worker.
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_seconds),
        # A workflow cached on a worker that died waits this long for it before any worker takes its next task.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.worker_sticky_timeout_seconds),
    )


async def run_worker(settings: Settings, *, task_queues: Sequence[str] = (), max_concurrent_activities: int = 100,
                     max_concurrent_workflow_tasks: int = 100) -> None:
    """Poll the task queues until SIGINT/SIGTERM, then shut down gracefully."""
    client = await connect_temporal(settings)
    engine = create_engine(settings, pool_size=max(2, min(max_concurrent_activities, 20)))
    queues = list(task_queues) or [settings.task_queue]
    metrics = Metrics()
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=metrics.registry)
    notifier = EventNotifier(database_url(settings), follow_events=False)
    await notifier.start()
    # No transport retries: Temporal owns retries.
    async with httpx.AsyncClient(timeout=settings.upstream_timeout_seconds) as http:
        workers = [build_worker(client, settings, session_factory(engine), http, metrics, notifier, task_queue=q,
                                max_concurrent_activities=max_concurrent_activities,
                                max_concurrent_workflow_tasks=max_concurrent_workflow_tasks) for q in queues]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runs = [asyncio.create_task(w.run()) for w in workers]
        settle_heap()
        log.info("worker polling task queues %s", ", ".join(queues))
        done, _ = await asyncio.wait([*runs, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down: no new tasks; in-flight activities get %ss", settings.worker_shutdown_grace_seconds)
        await asyncio.gather(*(w.shutdown() for w in workers))
        for run in runs:
            if run in done:
                run.result()  # a worker that died on its own is an error
    await notifier.stop()
    await engine.dispose()
    log.info("worker stopped")


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> None:
    """`python worker.py [--task-queue Q]… [--max-concurrent-activities N] …`."""
    parser = argparse.ArgumentParser(description="agentrunner worker")
    parser.add_argument("--task-queue", action="append", default=[],
                        help="task queue to poll (repeat for several; default AGENTRUNNER_TASK_QUEUE)")
    parser.add_argument("--max-concurrent-activities", type=int, default=100)
    parser.add_argument("--max-concurrent-workflow-tasks", type=int, default=100)
    args = parser.parse_args(argv)
    settings = settings or Settings()
    configure_logging(settings.log_format)
    # uvloop rather than asyncio's own loop: about a sixth less CPU per response (README, Benchmarks)
    uvloop.run(run_worker(settings, task_queues=args.task_queue,
                          max_concurrent_activities=args.max_concurrent_activities,
                          max_concurrent_workflow_tasks=args.max_concurrent_workflow_tasks))
    exit_after_shutdown(0)


if __name__ == "__main__":
    main()
