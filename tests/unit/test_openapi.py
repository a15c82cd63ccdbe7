"""/openapi.json (and so /docs) describes the real API: request bodies and answers from the typed models."""

from typing import Any

from api.app import create_app
from core.settings import Settings


def _document() -> dict[str, Any]:
    # Building the document needs no database or Temporal: the lifespan is not run.
    return create_app(Settings(_env_file=None, database_url="postgresql://unused/db")).openapi()


def _ref(operation: dict[str, Any], *path: str) -> str:
    node: Any = operation
    for key in path:
        node = node[key]
    return str(node["$ref"]).rsplit("/", 1)[-1]


def test_requests_and_answers_are_described() -> None:
    doc = _document()
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    create = paths["/v1/responses"]["post"]
    assert _ref(create, "requestBody", "content", "application/json", "schema") == "CreateResponseRequest"
    assert _ref(create, "responses", "200", "content", "application/json", "schema") == "Response"
    assert "text/event-stream" in create["responses"]["200"]["content"]
    assert {"model", "input", "text", "reasoning", "store"} <= set(schemas["CreateResponseRequest"]["properties"])
    compact = paths["/v1/responses/compact"]["post"]
    assert _ref(compact, "requestBody", "content", "application/json", "schema") == "CompactRequest"
    assert _ref(compact, "responses", "200", "content", "application/json", "schema") == "CompactedResponse"
    items = paths["/v1/responses/{response_id}/input_items"]["get"]
    assert _ref(items, "responses", "200", "content", "application/json", "schema") == "ResponseItemList"
    for name in ("Response", "ResponseItemList", "CompactedResponse", "TextFormatJsonSchema", "ChatCompletion"):
        assert name in schemas, name
    # Every reference resolves.
    text = str(doc)
    for ref in {part.split("'")[0] for part in text.split("#/components/schemas/")[1:]}:
        assert ref in schemas, ref
