"""A request uses one database session: authentication and the route share it."""

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from tests.conftest import Stack
from tests.scripted_upstream import Reply


@pytest.fixture
def checkouts() -> Iterator[list[int]]:
    """Counts connections taken from any pool while the test runs."""
    taken: list[int] = []

    def on_checkout(*_: Any) -> None:
        taken.append(1)

    event.listen(Pool, "checkout", on_checkout)
    yield taken
    event.remove(Pool, "checkout", on_checkout)


async def test_get_and_list_routes_take_one_connection(stack: Stack, checkouts: list[int]) -> None:
    model = await stack.model(Reply(text="once"))
    key = await stack.new_key()
    body = (await stack.call("POST", "/v1/responses", key, {"model": model, "input": "hi"})).json()
    # The answer leaves before the workflow's own end: let the in-process worker finish, so only the route counts.
    await stack.temporal.get_workflow_handle(body["id"]).result()
    for path in (f"/v1/responses/{body['id']}", f"/v1/responses/{body['id']}/input_items",
                 f"/v1/responses/{body['id']}/steps", "/v1/models"):
        checkouts.clear()
        r = await stack.call("GET", path, key)
        assert r.status_code == 200, r.text
        assert len(checkouts) == 1, path
