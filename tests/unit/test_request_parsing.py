"""Create-request validation without a database: every bad body is a 400 naming its param, with its code.

`core.wire.parse_request` and `normalize_input` catch what the body alone shows; `api.prepare.prepare` adds what
needs the catalog and stored responses, which it reads through five lookups replaced here by an in-memory catalog
(a session that is touched at all fails the test). tests/test_auth_and_errors.py keeps a few of these cases on the
real stack, where it also checks that nothing is written and the upstream is not called.
"""

from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import api.prepare
from api.prepare import prepare
from core.errors import InvalidRequest, NotFound
from core.model_target import ModelTarget
from core.settings import Settings
from core.wire import CreateResponseRequest, normalize_input, parse_request
from db.tables import Response, Tool

MODEL = "known-model"
OWNER = "owner-a"
TOOL = "lookup"  # registered
OTHER_TOOL = "translate"  # registered

# (body, param, code): rejected by parse_request or normalize_input, before any lookup.
PARSE_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"input": "hi"}, "model", "missing_required_parameter"),
    ({"model": MODEL}, "input", "missing_required_parameter"),
    ({"model": MODEL, "input": "hi", "temperature": 7}, "temperature", "invalid_value"),
    ({"model": MODEL, "input": "hi", "max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_value"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name",
     "missing_required_parameter"),
    ({"model": MODEL, "input": "hi", "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "mcp", "server_label": "x", "server_url": "http://h/mcp",
                                                "require_approval": "sometimes"}]},
     "tools[0].require_approval", "invalid_value"),
    ({"model": MODEL, "input": [{"type": "mcp_approval_response", "approval_request_id": "mcpr_1"}]},
     "input[0]", "missing_required_parameter"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "mcp", "server_label": "x", "server_url": "file:///etc",
                                                "require_approval": "never"}]},
     "tools[0].server_url", "invalid_value"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "mcp"}]}, "tools[0].server_label",
     "missing_required_parameter"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "mcp", "server_label": "agentrunner",
                                                "require_approval": "always"}]},
     "tools[0].require_approval", "unsupported_value"),
    ({"model": MODEL, "input": [{"role": "wizard", "content": "x"}]}, "input[0].role", "invalid_value"),
    ({"model": MODEL, "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id",
     "missing_required_parameter"),
    ({"model": MODEL, "input": [{"type": "bogus"}]}, "input[0].type", "unsupported_value"),
    ({"model": MODEL, "input": []}, "input", "invalid_value"),
    ({"model": MODEL, "input": "hi", "metadata": {"k": 1}}, "metadata", "invalid_value"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": "xml"}}}, "text.format", "invalid_value"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "name": "s", "schema": "str"}}},
     "text.format.schema", "invalid_value"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "name": "s",
                                                         "schema": {"type": "array"}}}},
     "text.format.schema", "invalid_value"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}},
     "text.format.name", "missing_required_parameter"),
    ({"model": MODEL, "input": "hi", "reasoning": {"effort": "enormous"}}, "reasoning.effort", "invalid_value"),
    ({"model": MODEL, "input": "hi", "prompt_cache_retention": "forever"}, "prompt_cache_retention",
     "invalid_value"),
    ({"model": MODEL, "input": "hi", "temprature": 0.2}, "temprature", "unknown_parameter"),
    ({"model": MODEL, "input": "hi", "moderation": {"model": "omni"}}, "moderation", "unsupported_parameter"),
    ({"model": MODEL, "input": "hi", "conversation": {"name": "x"}}, "conversation", "invalid_value"),
    ({"model": MODEL, "input": "hi", "prompt": {"id": "pmpt_1"}}, "prompt", "unsupported_parameter"),
    ({"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_image", "image_url": 7}]}]},
     "input[0].content[0].image_url", "invalid_value"),
]

# (body, param, code): well-formed, rejected against the catalog or the stored responses.
LOOKUP_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"model": MODEL, "input": "hi", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice",
     "invalid_value"),
    ({"model": MODEL, "input": [{"type": "item_reference", "id": "msg_missing"}]}, "input[0].id", "item_not_found"),
    ({"model": MODEL, "input": "hi", "previous_response_id": "resp_missing"}, "previous_response_id",
     "previous_response_not_found"),
]


def _ids(cases: list[tuple[dict[str, Any], str, str]]) -> list[str]:
    return [f"{param}-{code}" for _, param, code in cases]


def assert_invalid(err: InvalidRequest, param: str, code: str) -> None:
    """A 400 invalid_request_error naming `param`, in OpenAI's envelope."""
    assert type(err) is InvalidRequest
    assert err.http_status == 400 and err.error_type == "invalid_request_error"
    assert (err.param, err.code) == (param, code), err.envelope()
    assert err.message
    assert err.envelope() == {"error": {"message": err.message, "type": "invalid_request_error", "param": param,
                                        "code": code}}


def validate(body: Any) -> tuple[CreateResponseRequest, list[dict[str, Any]]]:
    """What the API checks of a body before any lookup."""
    req = parse_request(body)
    return req, normalize_input(req.input)


@pytest.mark.parametrize(("body", "param", "code"), PARSE_ERRORS, ids=_ids(PARSE_ERRORS))
def test_bad_body_is_rejected_by_parsing(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(body)
    assert_invalid(caught.value, param, code)


def test_ignored_and_null_unsupported_fields_are_accepted_and_not_stored() -> None:
    req, items = validate({"model": MODEL, "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,AA"}]}],
        "stream_options": {"include_obfuscation": False}, "moderation": None})
    assert req.model_extra == {"stream_options": {"include_obfuscation": False}, "moderation": None}
    assert items[0]["content"][0]["detail"] == "auto"  # the spec's default, listed as OpenAI lists it


def test_a_body_that_is_not_an_object_is_rejected() -> None:
    for body in (["model", "input"], "hi", None):
        with pytest.raises(InvalidRequest) as caught:
            parse_request(body)
        assert caught.value.http_status == 400 and caught.value.param is None


class _NoSession:
    """Stands in for the AsyncSession: prepare must reach the database only through the replaced lookups."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"prepare used the session directly ({name})")


class Catalog:
    """The models, tools, responses and items prepare looks up, in memory."""

    def __init__(self) -> None:
        self.models = {MODEL}
        self.tools = {name: Tool(name=name, description=f"{name} tool", url=f"http://tools.invalid/{name}",
                                 timeout_seconds=5.0,
                                 parameters={"type": "object", "properties": {"q": {"type": "string"}}})
                      for name in (TOOL, OTHER_TOOL)}
        self.responses: dict[str, Response] = {}
        self.items: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (owner, item)

    async def resolve_model(self, _s: Any, _settings: Settings, alias: str, _owner: str | None = None,
                            ) -> ModelTarget | None:
        return ModelTarget(alias, alias, "http://upstream.invalid/v1", None) if alias in self.models else None

    async def tools_by_name(self, _s: Any, names: list[str], _owner: str | None = None) -> dict[str, Tool]:
        return {n: self.tools[n] for n in names if n in self.tools}

    async def list_tools(self, _s: Any, _owner: str | None = None) -> list[Tool]:
        return [self.tools[n] for n in sorted(self.tools)]

    async def get_response(self, _s: Any, response_id: str, owner_id: str | None = None) -> Response | None:
        row = self.responses.get(response_id)
        return row if row is not None and owner_id in (None, row.owner_id) else None

    async def items_by_ids(self, _s: Any, owner_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: self.items[i][1] for i in ids if i in self.items and self.items[i][0] == owner_id}


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> Catalog:
    cat = Catalog()
    for name in ("resolve_model", "tools_by_name", "list_tools"):
        assert hasattr(api.prepare, name), f"api.prepare no longer imports {name}"
        monkeypatch.setattr(api.prepare, name, getattr(cat, name))
    for name in ("get_response", "items_by_ids"):
        monkeypatch.setattr(api.prepare.db, name, getattr(cat, name))
    return cat


async def run_prepare(body: Any, idempotency_key: str | None = None) -> api.prepare.Prepared:
    return await prepare(cast(AsyncSession, _NoSession()), Settings(_env_file=None), OWNER, body, idempotency_key)


@pytest.mark.parametrize(("body", "param", "code"), PARSE_ERRORS + LOOKUP_ERRORS,
                         ids=_ids(PARSE_ERRORS + LOOKUP_ERRORS))
async def test_bad_body_is_rejected_by_prepare(catalog: Catalog, body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await run_prepare(body)
    assert_invalid(caught.value, param, code)


# (body, param, code): a 404, the same whether the thing does not exist or is granted to other owners only.
NOT_FOUND: list[tuple[dict[str, Any], str, str]] = [
    ({"model": "no-such-model", "input": "hi"}, "model", "model_not_found"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "mcp", "server_label": "agentrunner",
                                                "allowed_tools": ["no_such_tool"]}]},
     "tools[0].allowed_tools", "tool_not_found"),
]


@pytest.mark.parametrize(("body", "param", "code"), NOT_FOUND, ids=_ids(NOT_FOUND))
async def test_unknown_or_not_granted_is_a_404(catalog: Catalog, body: dict[str, Any], param: str,
                                               code: str) -> None:
    with pytest.raises(NotFound) as caught:
        await run_prepare(body)
    err = caught.value
    assert err.http_status == 404 and (err.param, err.code) == (param, code), err.envelope()


async def test_another_owners_response_and_items_are_not_found(catalog: Catalog) -> None:
    catalog.responses["resp_theirs"] = Response(id="resp_theirs", owner_id="owner-b", status="completed",
                                                model=MODEL, request={}, request_hash="x")
    catalog.items["msg_theirs"] = ("owner-b", {"id": "msg_theirs", "type": "message", "role": "user",
                                               "content": [{"type": "input_text", "text": "secret"}]})
    with pytest.raises(InvalidRequest) as caught:
        await run_prepare({"model": MODEL, "input": "x", "previous_response_id": "resp_theirs"})
    assert_invalid(caught.value, "previous_response_id", "previous_response_not_found")
    with pytest.raises(InvalidRequest) as caught:
        await run_prepare({"model": MODEL, "input": [{"type": "item_reference", "id": "msg_theirs"}]})
    assert_invalid(caught.value, "input[0].id", "item_not_found")


# Good bodies.

def test_string_input_is_one_user_message() -> None:
    req, [item] = validate({"model": MODEL, "input": "hello"})
    assert req.model == MODEL and req.tool_choice == "auto" and req.tools == [] and req.metadata == {}
    assert item["id"].startswith("msg_")
    assert {k: v for k, v in item.items() if k != "id"} == {
        "type": "message", "role": "user", "status": "completed",
        "content": [{"type": "input_text", "text": "hello"}]}


def test_list_input_with_and_without_type() -> None:
    _, items = validate({"model": MODEL, "input": [
        {"role": "user", "content": "plain"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "typed"}]},
        {"type": "message", "role": "developer", "content": "dev", "id": "msg_given", "status": "in_progress"}]})
    assert [(i["type"], i["role"]) for i in items] == [("message", "user"), ("message", "assistant"),
                                                       ("message", "developer")]
    assert items[0]["content"] == [{"type": "input_text", "text": "plain"}]
    # Each role's text in the part type the spec gives it, so input_items pages validate strictly.
    assert items[1]["content"] == [{"type": "output_text", "text": "typed", "annotations": [], "logprobs": []}]
    assert items[2]["id"] == "msg_given" and items[2]["status"] == "in_progress"
    assert all(i["id"].startswith("msg_") for i in items)
    assert len({i["id"] for i in items}) == 3


def test_function_call_echo_and_its_output() -> None:
    echoed = {"type": "function_call", "id": "fc_from_before", "call_id": "call_1", "name": "get_weather",
              "arguments": '{"city": "Paris"}', "status": "completed"}
    _, [call, bare, output] = validate({"model": MODEL, "input": [
        echoed,
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "sunny"}]}]})
    assert call == echoed, "an echoed output item keeps its id and fields"
    assert bare["id"].startswith("fc_") and bare["status"] == "completed" and bare["call_id"] == "call_2"
    assert output["id"].startswith("fco_")
    assert {k: output[k] for k in ("type", "call_id", "output")} == {
        "type": "function_call_output", "call_id": "call_1", "output": "sunny"}


def test_item_reference_is_kept_for_prepare_to_resolve() -> None:
    _, items = validate({"model": MODEL, "input": [{"type": "item_reference", "id": "fc_1"},
                                                   {"type": "function_call_output", "call_id": "c", "output": "x"}]})
    assert items[0] == {"type": "item_reference", "id": "fc_1"}


async def test_prepare_resolves_references_and_tools_without_writing(catalog: Catalog) -> None:
    stored = {"id": "fc_stored", "type": "function_call", "call_id": "call_9", "name": "get_weather",
              "arguments": "{}", "status": "completed"}
    catalog.items["fc_stored"] = (OWNER, stored)
    catalog.responses["resp_prev"] = Response(id="resp_prev", owner_id=OWNER, status="completed", model=MODEL,
                                              request={}, request_hash="x")
    body = {"model": MODEL, "previous_response_id": "resp_prev", "tool_choice": {"type": "function", "name": TOOL},
            "tools": [{"type": "function", "name": TOOL}, {"type": "function", "name": "client_side"},
                      {"type": "mcp", "server_label": "agentrunner", "allowed_tools": [OTHER_TOOL]}],
            "input": [{"type": "item_reference", "id": "fc_stored"},
                      {"type": "function_call_output", "call_id": "call_9", "output": "done"}]}
    prepared = await run_prepare(body)
    assert prepared.is_new and prepared.items[0] == stored and prepared.items[1]["type"] == "function_call_output"
    row = prepared.row
    assert row.id.startswith("resp_") and row.owner_id == OWNER and row.status == "queued" and row.model == MODEL
    assert row.previous_response_id == "resp_prev" and row.idempotency_key is None and row.request_hash
    assert "input" not in row.request
    assert [t["name"] for t in row.request["_model_tools"]] == [TOOL, "client_side", OTHER_TOOL]
    # A function tool named like a registered tool gets its registered description and schema.
    assert row.request["_model_tools"][0]["description"] == f"{TOOL} tool"
    assert row.request["_server_tools"] == sorted([TOOL, OTHER_TOOL])
