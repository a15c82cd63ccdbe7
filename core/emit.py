"""Wire objects built as the spec's typed models (the `openai` package's `openai.types.responses`), then dumped to
the JSON we store and send: a field of the wrong name, type or value fails where it is made, not in a client.

Each item is validated once, when it is made (or arrives from an upstream); a Response object or lifecycle event
validates its own fields and takes its already-validated output items as they are. Items are validated against the
member of the spec's union their `type` names, not by trying the union's thirty-odd members in turn.
"""

from typing import Any, get_args

from openai import BaseModel as WireModel
from openai.types.conversations import ConversationItem
from openai.types.responses import Response, ResponseItem, ResponseOutputItem

_TIMESTAMPS = ("created_at", "completed_at")


def _whole_seconds(data: dict[str, Any]) -> None:
    # The models type timestamps as floats; OpenAI sends whole seconds, and clients that read them as integers
    # (Rust, Go) reject `1795523569.0`.
    for key in _TIMESTAMPS:
        if isinstance(data.get(key), float) and data[key].is_integer():
            data[key] = int(data[key])


def dump(model: WireModel) -> dict[str, Any]:
    """A model's JSON object: the fields it was given (explicit nulls included) and nothing else, by wire name."""
    data = model.model_dump(mode="json", exclude_unset=True, by_alias=True)
    _whole_seconds(data)
    return data


def _members(union: Any) -> dict[tuple[str, str | None], type[WireModel]]:
    """The models of a union of item types by (type, role): a message's model depends on its role."""
    members: dict[tuple[str, str | None], type[WireModel]] = {}
    for model in get_args(get_args(union)[0]):
        for kind in get_args(model.model_fields["type"].annotation):
            roles = get_args(model.model_fields["role"].annotation) if "role" in model.model_fields else (None,)
            for role in roles:
                members.setdefault((kind, role), model)
    return members


_OUTPUT_ITEMS = _members(ResponseOutputItem)
_LISTED_ITEMS = _members(ResponseItem)
_CONVERSATION_ITEMS = _members(ConversationItem)


def _item(members: dict[tuple[str, str | None], type[WireModel]], data: dict[str, Any]) -> dict[str, Any]:
    kind, role = str(data.get("type")), data.get("role")
    model = members.get((kind, role if kind == "message" else None))
    if model is None:
        raise ValueError(f"no item type {kind!r} (role {data.get('role')!r}) in the spec")
    return dump(model.model_validate(data))


def output_item(data: dict[str, Any]) -> dict[str, Any]:
    """An output item (ours, or an upstream's passed through) as the spec's model for its type; ValueError if it
    is not one."""
    return _item(_OUTPUT_ITEMS, data)


def listed_item(data: dict[str, Any]) -> dict[str, Any]:
    """An item as `input_items` lists it, as the spec's model for its type; ValueError if it is not one."""
    return _item(_LISTED_ITEMS, data)


def conversation_item(data: dict[str, Any]) -> dict[str, Any]:
    """An item as a conversation holds it, as the spec's model for its type; ValueError if it is not one."""
    return _item(_CONVERSATION_ITEMS, data)


def response(fields: dict[str, Any], output: list[dict[str, Any]]) -> dict[str, Any]:
    """A Response object: its fields validated as the spec's model, its output items (validated when made) as given."""
    data = dump(Response.model_validate({**fields, "output": []}))
    data["output"] = output
    return data


def event(model: type[WireModel], **fields: Any) -> dict[str, Any]:
    """A stream event as its model; its `sequence_number` is the event log's to assign when it stores it.

    A lifecycle event's `response` is one `response` made, so its output is not validated a second time.
    """
    given = fields.get("response")
    if given is not None:
        fields["response"] = {**given, "output": []}
    data = dump(model(sequence_number=0, **fields))
    del data["sequence_number"]
    if given is not None:
        _whole_seconds(data["response"])
        data["response"]["output"] = given["output"]
    return data
