"""Grants: a model, tool or MCP server granted to some owners is theirs only; everything else stays everyone's."""

import pytest

from tests.conftest import Stack
from tests.helpers import create, text_of
from tests.mcp_server import ScriptedMcp
from tests.scripted_upstream import Reply, ToolBehaviour

pytestmark = pytest.mark.timeout(120)


async def test_a_tenant_without_a_grant_gets_404s_and_does_not_see_them(stack: Stack, mcp: ScriptedMcp) -> None:
    model = await stack.model(Reply(text="for the grantee"))
    tool = await stack.tool(ToolBehaviour())
    label = f"granted-{tool}"
    await stack.admin("POST", "/admin/mcp-servers", {"label": label, "url": mcp.url})
    owner, stranger = "owner-granted", "owner-stranger"
    key, other = await stack.new_key(owner), await stack.new_key(stranger)
    for kind, name in (("model", model), ("tool", tool), ("mcp_server", label)):
        await stack.admin("POST", "/admin/grants", {"kind": kind, "name": name, "owner_id": owner})
    grants = (await stack.admin("GET", "/admin/grants"))["data"]
    assert {"kind": "model", "name": model, "owner_id": owner} in grants

    ours = [m["id"] for m in (await stack.call("GET", "/v1/models", key)).json()["data"]]
    theirs = [m["id"] for m in (await stack.call("GET", "/v1/models", other)).json()["data"]]
    assert model in ours and model not in theirs and stack.settings.scripted_model in theirs

    scripted = stack.settings.scripted_model
    refused = [({"model": model, "input": "hi"}, "model", "model_not_found"),
               ({"model": scripted, "input": "hi", "tools": [{"type": "mcp", "server_label": "agentrunner",
                                                               "allowed_tools": [tool]}]},
                "tools[0].allowed_tools", "tool_not_found"),
               ({"model": scripted, "input": "hi", "tools": [{"type": "mcp", "server_label": label,
                                                               "require_approval": "never"}]},
                "tools[0].server_label", "mcp_server_not_found")]
    before = await stack.count_rows()
    errors = []
    for body, param, code in refused:
        r = await stack.call("POST", "/v1/responses", other, body)
        assert r.status_code == 404, r.text
        assert (r.json()["error"]["param"], r.json()["error"]["code"]) == (param, code)
        errors.append(r.json()["error"])
    chat = await stack.call("POST", "/v1/chat/completions", other, {"model": model, "messages": [
        {"role": "user", "content": "hi"}]})
    assert chat.status_code == 404
    assert await stack.count_rows() == before and stack.upstream.scripts[model].requests == []
    # Unknown and not granted answer alike: nothing tells a tenant what others have.
    unknown = await stack.call("POST", "/v1/responses", other, {"model": "no-such-model", "input": "hi"})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {**errors[0], "message": errors[0]["message"].replace(model, "no-such-model")}
    # Every bit of it works for the grantee; registered tools offered by `mcp` are only the granted ones.
    assert text_of(await create(stack, key, model=model, input="hi")) == "for the grantee"
    body = await create(stack, key, model=scripted, input="hi", tools=[
        {"type": "mcp", "server_label": "agentrunner", "allowed_tools": [tool]},
        {"type": "mcp", "server_label": label, "require_approval": "never"}])
    assert body["status"] == "completed"
    # The last grant revoked, the model is everyone's again.
    await stack.admin("DELETE", f"/admin/grants/model/{model}/{owner}")
    assert (await stack.call("POST", "/v1/responses", other, {"model": model, "input": "hi"})).status_code == 200
