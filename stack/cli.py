"""The `agentrunner` command: dev, api, worker, migrate, admin."""

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from api import catalog
from api.catalog import NewApiKey, NewGrant, NewMcpServer, NewModel, NewTool
from core.errors import AgentRunnerError
from core.logging import configure_logging
from core.model_target import UPSTREAM_APIS
from core.process import exit_after_shutdown, settle_heap
from core.settings import Settings
from core.temporal import connect_temporal, ensure_search_attributes
from db.engine import create_engine, session_factory
from db.migrate import migrate
from db.tables import GRANT_KINDS
from stack.postgres import with_database


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
    m.add_argument("--context-window", type=int, default=None,
                   help="the model's context window in tokens (enables truncation checks)")
    m.add_argument("--cache-control", action="store_true",
                   help="the upstream takes cache_control breakpoints (else they are stripped)")
    m.add_argument("--api", choices=UPSTREAM_APIS, default="chat",
                   help="chat: the upstream's /chat/completions; responses: its own /responses (items pass through)")
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
    ms = admin.add_parser("add-mcp-server", help="register a remote MCP server (streamable HTTP) under a label")
    ms.add_argument("label")
    ms.add_argument("--url", required=True)
    ms.add_argument("--header", action="append", default=[], help="NAME=VALUE sent with every request (repeatable)")
    ms.add_argument("--description", default="")
    for action, text in (("grant", "let an owner use a model, tool or MCP server (then only its grantees may)"),
                         ("revoke-grant", "take a grant back (the last one gone, it is everyone's again)")):
        g = admin.add_parser(action, help=text)
        g.add_argument("kind", choices=GRANT_KINDS)
        g.add_argument("name")
        g.add_argument("owner")
    admin.add_parser("list-grants")
    admin.add_parser("list-mcp-servers")
    rms = admin.add_parser("remove-mcp-server")
    rms.add_argument("label")
    return p


async def _admin(settings: Settings, args: argparse.Namespace) -> Any:
    engine = create_engine(settings, pool_size=1)
    try:
        async with session_factory(engine)() as s:
            match args.action:
                case "create-key":
                    return await catalog.create_key(s, NewApiKey(owner_id=args.owner, name=args.name))
                case "list-keys":
                    return await catalog.list_keys(s)
                case "revoke-key":
                    return await catalog.revoke_key(s, args.id)
                case "add-model":
                    return await catalog.add_model(s, NewModel(alias=args.alias, base_url=args.base_url,
                                                               upstream_model=args.upstream_model,
                                                               api_key=args.api_key,
                                                               context_window=args.context_window,
                                                               cache_control=args.cache_control,
                                                               api=args.api))
                case "list-models":
                    return await catalog.list_models(s)
                case "remove-model":
                    return await catalog.remove_model(s, args.alias)
                case "add-tool":
                    name, value = (args.secret_header.split("=", 1) if args.secret_header else (None, None))
                    return await catalog.add_tool(s, NewTool(
                        name=args.name, url=args.url, description=args.description,
                        parameters=json.loads(args.parameters) if args.parameters else None,
                        timeout_seconds=args.timeout, secret_header_name=name, secret_header_value=value))
                case "list-tools":
                    return await catalog.list_tools(s)
                case "remove-tool":
                    return await catalog.remove_tool(s, args.name)
                case "add-mcp-server":
                    headers = dict(h.split("=", 1) for h in args.header)
                    return await catalog.add_mcp_server(s, NewMcpServer(
                        label=args.label, url=args.url, headers=headers, description=args.description))
                case "grant":
                    return await catalog.grant(s, NewGrant(kind=args.kind, name=args.name, owner_id=args.owner))
                case "revoke-grant":
                    return await catalog.revoke_grant(s, NewGrant(kind=args.kind, name=args.name,
                                                                  owner_id=args.owner))
                case "list-grants":
                    return await catalog.list_grants(s)
                case "list-mcp-servers":
                    return await catalog.list_mcp_servers(s)
                case "remove-mcp-server":
                    return await catalog.remove_mcp_server(s, args.label)
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
    # Every command works on the embedded defaults: without DATABASE_URL, embedded PostgreSQL is started here.
    settings = with_database(settings)
    if args.command == "api":
        import uvicorn

        from api.app import create_app

        configure_logging(settings.log_format)
        app = create_app(settings)
        settle_heap()
        # uvloop and httptools instead of asyncio's loop and h11: about a sixth less CPU per request (README)
        uvicorn.run(app, host=args.host or settings.api_host, port=args.port or settings.api_port,
                    log_config=None, loop="uvloop", http="httptools")
        exit_after_shutdown(0)
    if args.command == "worker":
        import worker

        worker.main(args.args, settings)
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
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        print(f"error: {problems}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
