"""The Responses API request model and input normalization (WIRE.md)."""

from collections.abc import Collection
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.emit import listed_item
from core.errors import InvalidCacheControl, InvalidRequest
from core.ids import new_id
from core.stream_events import SERVER_LABEL
from core.tiers import RequestedTier

ROLES = ("user", "assistant", "system", "developer")
TEXT_PART_TYPES = ("input_text", "output_text", "text")


class TextFormatText(BaseModel):
    """Plain text output (the default)."""

    type: Literal["text"]


class TextFormatJsonObject(BaseModel):
    """JSON mode: any JSON object."""

    type: Literal["json_object"]


class TextFormatJsonSchema(BaseModel):
    """Structured outputs: JSON matching a schema (`strict` asks the upstream to guarantee it)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _object_root(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v.get("type", "object") != "object":
            raise ValueError("the schema's root must be of type 'object'")
        return v


TextFormat = Annotated[TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")]
_FORMAT_TAGS = {"text", "json_object", "json_schema"}


class TextConfig(BaseModel):
    """`text`: the output format and, for upstreams that take it, verbosity."""

    format: TextFormat = TextFormatText(type="text")
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(BaseModel):
    """`reasoning`: effort (forwarded as `reasoning_effort`) and the summary asked for."""

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class CompactionManagement(BaseModel):
    """`context_management` entry: compact inside the loop once a model call's context reaches the threshold."""

    type: Literal["compaction"]
    compact_threshold: int = Field(ge=1)


# Fields of the spec's create request this server cannot honour: sent with a value, they are a 400 naming them.
UNSUPPORTED_FIELDS = {
    "prompt": "Stored prompt templates are not supported; send instructions and input.",
    "moderation": "Moderation is not run by this server.",
    "access_programs": "Access programs are not supported.",
    "image": "Request-level image options are not supported.",
    "background_options": "background_options are not supported; background: true runs durably as it is.",
    "prompt_cache_options": "prompt_cache_options are not supported; prompt_cache_key and prompt_cache_retention are "
                            "forwarded.",
}
# Fields accepted and ignored, because ignoring them changes nothing a client sees (README, "Request fields").
IGNORED_FIELDS = frozenset({"stream_options"})  # include_obfuscation: our deltas carry no obfuscation padding


def _metadata_limits(v: dict[str, str]) -> dict[str, str]:
    if len(v) > 16:
        raise ValueError("metadata may have at most 16 keys")
    if any(len(k) > 64 or len(val) > 512 for k, val in v.items()):
        raise ValueError("metadata keys are at most 64 characters and values at most 512")
    return v


# `metadata` on responses and conversations: at most 16 string pairs, keys ≤ 64 and values ≤ 512 characters.
Metadata = Annotated[dict[str, str], AfterValidator(_metadata_limits)]


class ConversationRef(BaseModel):
    """`conversation` given as an object."""

    id: str = Field(min_length=1)


class CreateResponseRequest(BaseModel):
    """POST /v1/responses body. A field outside the spec is a 400 (as OpenAI answers it), as is one of the spec's
    that cannot be honoured here (UNSUPPORTED_FIELDS)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[dict[str, Any]] = []
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = Field(None, ge=1)
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    metadata: Metadata = {}
    store: bool = True
    user: str | None = None
    background: bool = False
    stream: bool = False
    service_tier: RequestedTier | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    reasoning: ReasoningConfig | None = None
    text: TextConfig | None = None
    prompt_cache_key: str | None = Field(None, max_length=1024)
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    safety_identifier: str | None = Field(None, max_length=64)
    context_management: list[CompactionManagement] | None = Field(None, max_length=1)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    conversation: str | ConversationRef | None = None

    @property
    def conversation_id(self) -> str | None:
        """The conversation's id, however it was given."""
        return self.conversation.id if isinstance(self.conversation, ConversationRef) else self.conversation

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice_shape(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        if isinstance(v, str) and v not in ("auto", "none", "required"):
            raise ValueError("tool_choice must be 'auto', 'none', 'required' or a function selector")
        if isinstance(v, dict) and not (v.get("type") == "function" and isinstance(v.get("name"), str)):
            raise ValueError("tool_choice object must be {\"type\": \"function\", \"name\": ...}")
        return v


class CreateConversationRequest(BaseModel):
    """POST /v1/conversations body."""

    model_config = ConfigDict(extra="forbid")

    metadata: Metadata = {}
    items: list[dict[str, Any]] | None = Field(None, max_length=20)


class UpdateConversationRequest(BaseModel):
    """POST /v1/conversations/{id} body."""

    model_config = ConfigDict(extra="forbid")

    metadata: Metadata


class AddItemsRequest(BaseModel):
    """POST /v1/conversations/{id}/items body."""

    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(min_length=1, max_length=20)


class CompactRequest(BaseModel):
    """POST /v1/responses/compact body: the window to compact (`input`, after `previous_response_id`'s chain)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    prompt_cache_key: str | None = Field(None, max_length=1024)
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    service_tier: RequestedTier | None = None


M = TypeVar("M", bound=BaseModel)


def validate_body(model: type[M], body: Any) -> M:
    """Validate a JSON body against a request model, turning the first problem into a 400 naming its param."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = _param_path(err["loc"])
        if err["type"] == "missing":
            raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                                 code="missing_required_parameter") from None
        if err["type"] == "extra_forbidden":
            raise InvalidRequest(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter") from None
        raise InvalidRequest(f"Invalid value for '{param}': {err['msg']}.", param=param,
                             code="invalid_value") from None


def parse_request(body: Any) -> CreateResponseRequest:
    """Validate a create body: its shape, its fields, then its tools."""
    req = validate_body(CreateResponseRequest, body)
    for name, value in (req.model_extra or {}).items():
        if name in IGNORED_FIELDS or (name in UNSUPPORTED_FIELDS and value is None):
            continue
        if name in UNSUPPORTED_FIELDS:
            raise InvalidRequest(UNSUPPORTED_FIELDS[name], param=name, code="unsupported_parameter")
        raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    for i, tool in enumerate(req.tools):
        if tool.get("type") == "function":
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                raise InvalidRequest("Function tools need a 'name'.", param=f"tools[{i}].name",
                                     code="missing_required_parameter")
        elif tool.get("type") == "mcp":
            _check_mcp_tool(tool, f"tools[{i}]")
        else:
            raise InvalidRequest(
                f"Unsupported tool type {tool.get('type')!r}; 'function' and 'mcp' (server_label "
                f"'{SERVER_LABEL}') are supported.", param=f"tools[{i}].type", code="unsupported_value")
    return req


def _check_mcp_tool(tool: dict[str, Any], param: str) -> None:
    label = tool.get("server_label")
    if not isinstance(label, str) or not label:
        raise InvalidRequest("mcp tools need a 'server_label'.", param=f"{param}.server_label",
                             code="missing_required_parameter")
    if label == SERVER_LABEL:
        if tool.get("server_url") is not None:
            raise InvalidRequest(f"server_label '{SERVER_LABEL}' names the server's own registered tools; it takes "
                                 "no server_url.", param=f"{param}.server_url", code="invalid_value")
        if tool.get("require_approval") not in (None, "never"):
            raise InvalidRequest("The server's own registered tools run without approval; use require_approval "
                                 "'never'.", param=f"{param}.require_approval", code="unsupported_value")
    else:
        url = tool.get("server_url")
        if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            raise InvalidRequest("server_url must be an http(s) URL.", param=f"{param}.server_url",
                                 code="invalid_value")
        headers = tool.get("headers")
        if headers is not None and not (isinstance(headers, dict)
                                        and all(isinstance(v, str) for v in headers.values())):
            raise InvalidRequest("headers must map names to strings.", param=f"{param}.headers", code="invalid_value")
        if tool.get("authorization") is not None and not isinstance(tool["authorization"], str):
            raise InvalidRequest("authorization must be a string.", param=f"{param}.authorization",
                                 code="invalid_value")
        if not _approval_filter_ok(tool.get("require_approval")):
            raise InvalidRequest("require_approval is 'always', 'never', or {\"always\"|\"never\": {\"tool_names\": "
                                 "[...]}}.", param=f"{param}.require_approval", code="invalid_value")
    if mcp_allowed_tools(tool) is None and tool.get("allowed_tools") is not None:
        raise InvalidRequest("allowed_tools must be a list of tool names or {\"tool_names\": [...]}.",
                             param=f"{param}.allowed_tools", code="invalid_value")


def _approval_filter_ok(value: Any) -> bool:
    if value is None or value in ("always", "never"):
        return True
    if not isinstance(value, dict) or not value or set(value) - {"always", "never"}:
        return False
    return all(isinstance(v, dict) and isinstance(v.get("tool_names", []), list) for v in value.values())


def mcp_allowed_tools(tool: dict[str, Any]) -> list[str] | None:
    """The tool names an `mcp` tool entry allows, or None for all of them."""
    allowed = tool.get("allowed_tools")
    if isinstance(allowed, dict):
        allowed = allowed.get("tool_names")
    if isinstance(allowed, list) and all(isinstance(n, str) for n in allowed):
        return allowed
    return None


def _param_path(loc: tuple[Any, ...]) -> str:
    """`tools[0]`-style path: the field, then list indexes (union member names are dropped).

    Inside the typed `text` and `reasoning` objects it names the nested field: `text.format.schema`.
    """
    if not loc:
        return "body"
    if loc[0] in ("text", "reasoning"):
        return ".".join(str(p) for p in loc if p not in _FORMAT_TAGS or p == loc[0]).replace("schema_", "schema")
    return str(loc[0]) + "".join(f"[{p}]" for p in loc[1:] if isinstance(p, int))


MAX_CACHE_BREAKPOINTS = 4
CACHE_TTLS = ("5m", "1h", "24h")


def _text_part(text: str, role: str, part: dict[str, Any] | None = None) -> dict[str, Any]:
    """A text part in the type the spec gives it for this role: assistant output_text, everyone else input_text."""
    part = part or {}
    marker = {"cache_control": part["cache_control"]} if "cache_control" in part else {}
    if role == "assistant":
        return {"type": "output_text", "text": text, "annotations": part.get("annotations") or [],
                "logprobs": part.get("logprobs") or [], **marker}
    return {"type": "input_text", "text": text, **marker}


def check_cache_control(marker: Any, param: str, enabled: Collection[str]) -> None:
    """A `cache_control` breakpoint is `{"type": "ephemeral", "ttl": <an enabled tier>}` (ttl optional: 5m)."""
    tiers = f"enabled TTLs: {', '.join(enabled) or 'none'}"
    if not isinstance(marker, dict) or set(marker) - {"type", "ttl"}:
        raise InvalidCacheControl(f"Malformed cache_control: expected {{'type': 'ephemeral', 'ttl': ...}} ({tiers}).",
                                  param=param, reason="malformed")
    if marker.get("type") != "ephemeral":
        raise InvalidCacheControl(f"Unknown cache_control type {marker.get('type')!r}: only 'ephemeral' ({tiers}).",
                                  param=param, reason="unknown_type")
    ttl = marker.get("ttl", "5m")
    if ttl not in CACHE_TTLS:
        raise InvalidCacheControl(f"Unknown cache_control ttl {ttl!r} ({tiers}).", param=param, reason="unknown_ttl")
    if ttl not in enabled:
        raise InvalidCacheControl(f"The cache_control ttl {ttl!r} is not enabled here ({tiers}).", param=param,
                                  reason="disabled_ttl")


def _text_of(content: Any, param: str, role: str, cache_ttls: Collection[str]) -> list[dict[str, Any]]:
    """Normalize message content to a list of typed parts."""
    if isinstance(content, str):
        return [_text_part(content, role)]
    if not isinstance(content, list):
        raise InvalidRequest("Message content must be a string or a list of parts.", param=param)
    parts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in (*TEXT_PART_TYPES, "input_image", "input_file",
                                                                  "refusal"):
            raise InvalidRequest("Unsupported content part.", param=f"{param}[{j}]", code="unsupported_value")
        if part["type"] == "input_file" and not (part.get("file_data") or part.get("file_id")):
            # Chat upstreams take a file inline or by their own id; there is nothing to send for a URL.
            raise InvalidRequest("input_file parts need 'file_data' (base64) or 'file_id'; 'file_url' cannot be "
                                 "passed to a chat-completions upstream.", param=f"{param}[{j}]",
                                 code="unsupported_value")
        if part["type"] in TEXT_PART_TYPES and not isinstance(part.get("text"), str):
            raise InvalidRequest("A text part needs a 'text' string.", param=f"{param}[{j}].text")
        if "cache_control" in part:
            check_cache_control(part["cache_control"], f"{param}[{j}].cache_control", cache_ttls)
        if part["type"] == "input_image":
            part = {**part, "detail": part.get("detail") or "auto"}  # the default, listed as OpenAI lists it
        parts.append(_text_part(part["text"], role, part) if part["type"] in TEXT_PART_TYPES else part)
    return parts


def normalize_input(raw: str | list[dict[str, Any]], *, cache_ttls: Collection[str] = (),
                    field: str = "input") -> list[dict[str, Any]]:
    """Turn every accepted input shape into stored items, each with an `id`.

    `cache_control` breakpoints on content parts are checked against the enabled TTLs, at most four in all.

    `item_reference` items are returned as-is; the caller resolves them against stored items.
    """
    if isinstance(raw, str):
        return [{"id": new_id("msg"), "type": "message", "role": "user", "status": "completed",
                 "content": [{"type": "input_text", "text": raw}]}]
    items: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        param = f"{field}[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise InvalidRequest(f"Invalid role {role!r}.", param=f"{param}.role", code="invalid_value")
            if "content" not in item:
                raise InvalidRequest("Message items need 'content'.", param=f"{param}.content",
                                     code="missing_required_parameter")
            message = {"id": item.get("id") or new_id("msg"), "type": "message", "role": role,
                       "status": item.get("status", "completed"),
                       "content": _text_of(item["content"], f"{param}.content", role, cache_ttls)}
            if item.get("phase") is not None:
                if role != "assistant" or item["phase"] not in ("commentary", "final_answer"):
                    raise InvalidRequest("'phase' is 'commentary' or 'final_answer', on assistant messages only.",
                                         param=f"{param}.phase", code="invalid_value")
                message["phase"] = item["phase"]  # echoed in input_items as sent
            items.append(message)
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    raise InvalidRequest(f"function_call items need '{key}'.", param=f"{param}.{key}",
                                         code="missing_required_parameter")
            items.append({"id": item.get("id") or new_id("fc"), "type": "function_call",
                          "call_id": item["call_id"], "name": item["name"], "arguments": item["arguments"],
                          "status": item.get("status", "completed")})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise InvalidRequest("function_call_output items need 'call_id'.", param=f"{param}.call_id",
                                     code="missing_required_parameter")
            output = item.get("output")
            if not isinstance(output, str):
                output = _output_text(output, f"{param}.output")
            items.append({"id": item.get("id") or new_id("fco"), "type": "function_call_output",
                          "call_id": item["call_id"], "output": output,
                          "status": item.get("status", "completed")})
        elif kind == "mcp_call":
            for key in ("id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    raise InvalidRequest(f"mcp_call items need '{key}'.", param=f"{param}.{key}",
                                         code="missing_required_parameter")
            keys = ("id", "type", "server_label", "name", "arguments", "output", "error", "status")
            items.append({k: item.get(k) for k in keys}
                         | ({"approval_request_id": item["approval_request_id"]}
                            if item.get("approval_request_id") else {}))
        elif kind in ("mcp_list_tools", "mcp_approval_request"):  # history a client re-sends
            if not isinstance(item.get("id"), str) or not isinstance(item.get("server_label"), str):
                raise InvalidRequest(f"{kind} items need 'id' and 'server_label'.", param=param,
                                     code="missing_required_parameter")
            items.append(item)
        elif kind == "mcp_approval_response":
            if not isinstance(item.get("approval_request_id"), str) or not isinstance(item.get("approve"), bool):
                raise InvalidRequest("mcp_approval_response items need 'approval_request_id' and 'approve' (a "
                                     "boolean).", param=param, code="missing_required_parameter")
            items.append({"id": item.get("id") or new_id("mcpa"), "type": kind,
                          "approval_request_id": item["approval_request_id"], "approve": item["approve"],
                          **({"reason": item["reason"]} if item.get("reason") is not None else {})})
        elif kind == "reasoning":
            # Kept and echoed; chat upstreams get no reasoning back (most reject or ignore it).
            if not isinstance(item.get("summary", []), list):
                raise InvalidRequest("reasoning items need 'summary' as a list.", param=f"{param}.summary",
                                     code="invalid_value")
            items.append({"id": item.get("id") or new_id("rs"), "type": "reasoning",
                          "summary": item.get("summary", []),
                          **{k: item[k] for k in ("content", "encrypted_content") if item.get(k) is not None}})
        elif kind == "compaction":
            if not isinstance(item.get("encrypted_content"), str):
                raise InvalidRequest("compaction items need 'encrypted_content'.", param=f"{param}.encrypted_content",
                                     code="missing_required_parameter")
            items.append({"id": item.get("id") or new_id("cmp"), "type": "compaction",
                          "encrypted_content": item["encrypted_content"]})
        elif kind == "item_reference":
            if not isinstance(item.get("id"), str):
                raise InvalidRequest("item_reference needs an 'id'.", param=f"{param}.id",
                                     code="missing_required_parameter")
            items.append({"type": "item_reference", "id": item["id"]})
        else:
            raise InvalidRequest(f"Unsupported input item type {kind!r}.", param=f"{param}.type",
                                 code="unsupported_value")
    if not items:
        raise InvalidRequest(f"'{field}' must not be empty.", param=field, code="invalid_value")
    items = [_as_listed(item, i, field) for i, item in enumerate(items)]
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item["type"] != "item_reference":
            if item["id"] in seen:
                raise InvalidRequest(f"Duplicate item id {item['id']!r} in {field}.", param=f"{field}[{i}].id",
                                     code="invalid_value")
            seen.add(item["id"])
    markers = [(i, j) for i, item in enumerate(items) for j, part in enumerate(item.get("content") or [])
               if isinstance(part, dict) and "cache_control" in part]
    if len(markers) > MAX_CACHE_BREAKPOINTS:
        i, j = markers[MAX_CACHE_BREAKPOINTS]
        raise InvalidCacheControl(f"At most {MAX_CACHE_BREAKPOINTS} cache_control breakpoints per request "
                                  f"(enabled TTLs: {', '.join(cache_ttls) or 'none'}).",
                                  param=f"{field}[{i}].content[{j}].cache_control", reason="too_many")
    return items


def _as_listed(item: dict[str, Any], index: int, field: str) -> dict[str, Any]:
    """A normalized input item as the spec's item model (how input_items lists it); references are resolved later."""
    if item["type"] == "item_reference":
        return item
    try:
        return listed_item(item)
    except ValidationError as exc:
        first = _in_matching_member(exc.errors())
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"] if not _is_member(p))
        raise InvalidRequest(f"Invalid {item['type']} item: {first['msg']}.", param=f"{field}[{index}]{where}",
                             code="invalid_value") from exc


def _is_member(loc_part: Any) -> bool:
    return isinstance(loc_part, str) and loc_part[:1].isupper()  # a union member's model name, not a field


def _in_matching_member(errors: list[Any]) -> Any:
    """The first error inside the union member the value's `type` chose: members whose `type` did not match are the
    ones with a literal error on it."""
    wrong = [tuple(e["loc"][:-1]) for e in errors if e["type"] == "literal_error" and e["loc"][-1] == "type"]
    return next((e for e in errors if not any(tuple(e["loc"][:len(w)]) == w for w in wrong)), errors[0])


def _output_text(output: Any, param: str) -> str:
    if isinstance(output, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in output):
        return "".join(p["text"] for p in output)
    raise InvalidRequest("function_call_output 'output' must be a string or a list of text parts.", param=param)
