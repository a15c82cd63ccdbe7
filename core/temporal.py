"""Reaching Temporal: the client every process uses, and the search attributes responses are tagged with."""

import asyncio
import time

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from core import search_attributes
from core.settings import Settings


async def connect_temporal(settings: Settings, *, lazy: bool = False) -> Client:
    """A client with the pydantic data converter, as every client and worker must use; `lazy` connects on first
    use instead of failing now when the server is unreachable."""
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                data_converter=pydantic_data_converter, lazy=lazy)


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
