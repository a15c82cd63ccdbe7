"""Auth, ownership, and bad input: OpenAI-style envelopes with the right status, nothing half-written."""

import uuid
from typing import Any

import pytest

from tests.conftest import Stack
from tests.helpers import create
from tests.scripted_upstream import Reply


def assert_envelope(r: Any, status: int, type_: str, param: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == type_ and err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


async def test_missing_or_wrong_key_is_401(stack: Stack) -> None:
    for key in (None, "sk-wrong"):
        for method, path in (("POST", "/v1/responses"), ("GET", "/v1/responses/resp_x"), ("GET", "/v1/models")):
            r = await stack.call(method, path, key, {"model": "m", "input": "x"} if method == "POST" else None)
            assert_envelope(r, 401, "authentication_error")
    r = await stack.http.get(stack.url + "/admin/tools", headers={"Authorization": "Bearer nope"})
    assert_envelope(r, 401, "authentication_error")


async def test_revoked_key_is_401(stack: Stack) -> None:
    key = await stack.new_key()
    assert (await stack.call("GET", "/v1/models", key)).status_code == 200
    keys = (await stack.admin("GET", "/admin/api-keys"))["data"]
    key_id = next(k["id"] for k in keys if key.startswith(k["prefix"]) and not k["revoked"])
    await stack.admin("DELETE", f"/admin/api-keys/{key_id}")
    assert_envelope(await stack.call("GET", "/v1/models", key), 401, "authentication_error")


async def test_other_owners_response_is_404_everywhere(stack: Stack) -> None:
    model = await stack.model(Reply(text="private"))
    alice, bob = await stack.new_key(), await stack.new_key()
    body = await create(stack, alice, model=model, input="secret")
    rid = body["id"]
    for method, path in (("GET", f"/v1/responses/{rid}"), ("DELETE", f"/v1/responses/{rid}"),
                         ("POST", f"/v1/responses/{rid}/cancel"), ("GET", f"/v1/responses/{rid}/input_items"),
                         ("GET", f"/v1/responses/{rid}/steps")):
        assert_envelope(await stack.call(method, path, bob), 404, "not_found_error")
    follow = await stack.call("POST", "/v1/responses", bob, {"model": model, "input": "x", "previous_response_id": rid})
    assert_envelope(follow, 400, "invalid_request_error", "previous_response_id")
    ref = await stack.call("POST", "/v1/responses", bob, {
        "model": model, "input": [{"type": "item_reference", "id": body["output"][0]["id"]}]})
    assert_envelope(ref, 400, "invalid_request_error", "input[0].id")
    assert (await stack.call("GET", f"/v1/responses/{rid}", alice)).status_code == 200


# Every bad body is a unit test of parsing and of api.prepare (tests/unit/test_request_parsing.py); these few, one
# per layer that rejects, show on the real stack the status and envelope, that nothing is written, and that the
# upstream is not called.
BAD_BODIES = [
    ({"input": "hi"}, "model", "missing_required_parameter", 400),  # the request model
    ({"model": "MODEL", "input": [{"role": "wizard", "content": "x"}]}, "input[0].role", "invalid_value",
     400),  # input
    ({"model": "no-such-model", "input": "hi"}, "model", "model_not_found", 404),  # the catalog, as OpenAI answers
    ({"model": "MODEL", "input": [{"type": "item_reference", "id": "msg_missing"}]}, "input[0].id",
     "item_not_found", 400),  # stored items
]


@pytest.mark.parametrize(("body", "param", "code", "status"), BAD_BODIES,
                         ids=[f"{p}-{c}" for _, p, c, _ in BAD_BODIES])
async def test_bad_request_bodies(stack: Stack, body: dict[str, Any], param: str, code: str, status: int) -> None:
    model = await stack.model(Reply(text="unused"))
    key = await stack.new_key()
    before = await stack.count_rows()
    body = {k: (model if v == "MODEL" else v) for k, v in body.items()}
    kind = "invalid_request_error" if status == 400 else "not_found_error"
    err = assert_envelope(await stack.call("POST", "/v1/responses", key, body), status, kind, param)
    assert err["code"] == code
    assert await stack.count_rows() == before
    assert stack.upstream.scripts[model].requests == []


async def test_malformed_json_and_oversized_body(stack: Stack) -> None:
    key = await stack.new_key()
    before = await stack.count_rows()
    r = await stack.call("POST", "/v1/responses", key, content=b"{not json",
                         headers={"Content-Type": "application/json"})
    assert assert_envelope(r, 400, "invalid_request_error")["code"] == "invalid_json"
    big = {"model": "agentrunner-scripted", "input": "x" * (stack.settings.max_body_bytes + 1)}
    assert_envelope(await stack.call("POST", "/v1/responses", key, big), 413, "invalid_request_error")

    async def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    streamed = await stack.call("POST", "/v1/responses", key, content=chunks())
    assert_envelope(streamed, 413, "invalid_request_error")
    assert await stack.count_rows() == before


async def test_unknown_fields_are_a_400_and_defaults_are_echoed(stack: Stack) -> None:
    model = await stack.model(Reply(text="fine"))
    key = await stack.new_key()
    before = await stack.count_rows()
    r = await stack.call("POST", "/v1/responses", key, {"model": model, "input": "hi", "some_future_field": 1})
    assert_envelope(r, 400, "invalid_request_error")
    assert r.json()["error"]["param"] == "some_future_field" and r.json()["error"]["code"] == "unknown_parameter"
    assert await stack.count_rows() == before and stack.upstream.scripts[model].requests == []
    body = await create(stack, key, model=model, input="hi", include=[], stream=False, store=True,
                        tool_choice="auto", stream_options={"include_obfuscation": False})
    assert body["status"] == "completed"
    for field in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "top_logprobs", "store",
                  "background", "service_tier"):
        assert body[field] is not None, field


async def test_unknown_route_and_method_use_the_envelope(stack: Stack) -> None:
    key = await stack.new_key()
    assert_envelope(await stack.call("GET", "/v1/nothing-here", key), 404, "not_found_error")
    assert_envelope(await stack.call("PUT", "/v1/responses", key), 405, "invalid_request_error")


async def test_a_model_or_tool_changed_while_in_use_is_seen_by_the_next_response(stack: Stack) -> None:
    # The API and the worker keep the catalog lookups they made; a change must reach both before the next response.
    key = await stack.new_key()
    alias = f"alias-{uuid.uuid4().hex[:8]}"
    for text in ("from the first upstream model", "from the second"):
        upstream_model = stack.upstream.script(Reply(text=text))
        await stack.admin("POST", "/admin/models", {"alias": alias, "base_url": stack.upstream.base_url + "/v1",
                                                    "upstream_model": upstream_model})
        body = await create(stack, key, model=alias, input="hi")
        assert body["output"][0]["content"][0]["text"] == text
        assert len(stack.upstream.scripts[upstream_model].requests) == 1

    tool, elsewhere = await stack.tool(), stack.upstream.tool()
    model = await stack.model(Reply(tool_calls=[(tool, {"q": "a"})]), Reply(text="one"),
                              Reply(tool_calls=[(tool, {"q": "b"})]), Reply(text="two"))
    fields = {"model": model, "input": "go", "tools": [{"type": "function", "name": tool}]}
    await create(stack, key, **fields)
    await stack.admin("POST", "/admin/tools", {"name": tool, "url": f"{stack.upstream.base_url}/tools/{elsewhere}"})
    await create(stack, key, **fields)
    assert (len(stack.upstream.tool_hits[tool]), len(stack.upstream.tool_hits[elsewhere])) == (1, 1)

    await stack.admin("DELETE", f"/admin/models/{alias}")
    err = assert_envelope(await stack.call("POST", "/v1/responses", key, {"model": alias, "input": "hi"}), 404,
                          "not_found_error", "model")
    assert err["code"] == "model_not_found"


async def test_registering_a_model_or_tool_again_replaces_it(stack: Stack) -> None:
    name = stack.upstream.script(Reply(text="from the new upstream"))
    await stack.admin("POST", "/admin/models", {"alias": name, "base_url": "http://127.0.0.1:9/v1"})
    await stack.admin("POST", "/admin/models", {"alias": name, "base_url": stack.upstream.base_url + "/v1"})
    body = await create(stack, await stack.new_key(), model=name, input="hi")
    assert body["status"] == "completed" and body["output"][0]["content"][0]["text"] == "from the new upstream"

    tool = {"name": "replaced_tool", "url": "http://127.0.0.1:9/x", "description": "first"}
    await stack.admin("POST", "/admin/tools", tool)
    await stack.admin("POST", "/admin/tools", {**tool, "description": "second", "timeout_seconds": 5})
    listed = [t for t in (await stack.admin("GET", "/admin/tools"))["data"] if t["name"] == "replaced_tool"]
    assert [(t["description"], t["timeout_seconds"]) for t in listed] == [("second", 5)]
