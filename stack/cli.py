"""The `agentrunner` command: dev, api, worker, migrate, admin."""

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from core.errors import AgentRunnerError
from core.logging import configure_logging
from core.settings import Settings
from db import catalog
from db.engine import create_engine, session_factory
from db.migrate import migrate
from stack.process import exit_after_shutdown
from stack.temporal import connect_temporal, ensure_search_attributes


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `agentrunner` command."""
    p = argparse.ArgumentParser(prog="agentrunner", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="start PostgreSQL, Temporal, the API and workers")
    dev.add_argument("--workers", type=int, default=2)
    dev.add_argument("--temporal-port", type=int, default=7233, help="port of the Temporal dev server it starts")
    dev.add_argument("--worker-metrics-port", type=int, default=9101,
                     help="first worker's metrics port (the next worker gets the next port; 0 = off)")
    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    worker = sub.add_parser("worker", help="run a worker (same as python worker.py)")
    worker.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("migrate", help="apply database migrations")

    admin = sub.add_parser("admin", help="manage API keys, models and tools").add_subparsers(
        dest="action", required=True)
    k = admin.add_parser("create-key", help="create an API key for an owner")
    k.add_argument("--owner", required=True)
    k.add_argument("--name", default="default")
    admin.add_parser("list-keys")
    r = admin.add_parser("revoke-key")
    r.add_argument("id")
    m = admin.add_parser("add-model", help="route a model alias to an OpenAI-compatible upstream")
    m.add_argument("alias")
    m.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1")
    m.add_argument("--upstream-model", default=None)
    m.add_argument("--api-key", default=None)
    admin.add_parser("list-models")
    rm = admin.add_parser("remove-model")
    rm.add_argument("alias")
    t = admin.add_parser("add-tool", help="register a server-side HTTP tool")
    t.add_argument("name")
    t.add_argument("--url", required=True)
    t.add_argument("--description", default="")
    t.add_argument("--parameters", default=None, help="JSON schema of the arguments")
    t.add_argument("--timeout", type=float, default=30.0)
    t.add_argument("--secret-header", default=None, help="NAME=VALUE sent with every call")
    admin.add_parser("list-tools")
    rt = admin.add_parser("remove-tool")
    rt.add_argument("name")
    return p


async def _admin(settings: Settings, args: argparse.Namespace) -> Any:
    engine = create_engine(settings, pool_size=1)
    try:
        async with session_factory(engine)() as s:
            match args.action:
                case "create-key":
                    row, secret = await catalog.create_api_key(s, args.owner, args.name)
                    return {"id": row.id, "owner_id": row.owner_id, "key": secret}
                case "list-keys":
                    return [{"id": r.id, "owner_id": r.owner_id, "name": r.name, "prefix": r.prefix,
                             "revoked": r.revoked_at is not None} for r in await catalog.list_api_keys(s)]
                case "revoke-key":
                    await catalog.revoke_api_key(s, args.id)
                    return {"id": args.id, "revoked": True}
                case "add-model":
                    mrow = await catalog.add_model(s, args.alias, args.base_url, args.upstream_model, args.api_key)
                    return {"alias": mrow.alias, "base_url": mrow.base_url, "upstream_model": mrow.upstream_model}
                case "list-models":
                    return [{"alias": r.alias, "base_url": r.base_url, "upstream_model": r.upstream_model}
                            for r in await catalog.list_models(s)]
                case "remove-model":
                    await catalog.remove_model(s, args.alias)
                    return {"alias": args.alias, "deleted": True}
                case "add-tool":
                    name, value = (args.secret_header.split("=", 1) if args.secret_header else (None, None))
                    trow = await catalog.add_tool(
                        s, name=args.name, url=args.url, description=args.description,
                        parameters=json.loads(args.parameters) if args.parameters else None,
                        timeout_seconds=args.timeout, secret_header_name=name, secret_header_value=value)
                    return {"name": trow.name, "url": trow.url}
                case "list-tools":
                    return [{"name": r.name, "url": r.url, "description": r.description,
                             "timeout_seconds": r.timeout_seconds} for r in await catalog.list_tools(s)]
                case "remove-tool":
                    await catalog.remove_tool(s, args.name)
                    return {"name": args.name, "deleted": True}
    finally:
        await engine.dispose()
    raise AssertionError(args.action)


async def _migrate(settings: Settings) -> list[str]:
    """Database migrations, then Temporal's search attributes."""
    engine = create_engine(settings, pool_size=1)
    try:
        applied = await migrate(engine)
    finally:
        await engine.dispose()
    client = await connect_temporal(settings)
    added = await ensure_search_attributes(client, settings.temporal_namespace)
    return applied + [f"search attribute {name}" for name in added]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    settings = Settings()
    if args.command == "dev":
        from stack.dev import run_dev

        return run_dev(settings, workers=args.workers, temporal_port=args.temporal_port,
                       metrics_port=args.worker_metrics_port)
    if args.command == "api":
        import uvicorn

        from api.app import create_app

        configure_logging(settings.log_format)
        uvicorn.run(create_app(settings), host=args.host or settings.api_host, port=args.port or settings.api_port,
                    log_config=None)
        exit_after_shutdown(0)
    if args.command == "worker":
        import worker

        worker.main(args.args)
        return 0
    if args.command == "migrate":
        applied = asyncio.run(_migrate(settings))
        print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
        return 0
    try:
        print(json.dumps(asyncio.run(_admin(settings, args)), indent=2))
    except AgentRunnerError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
