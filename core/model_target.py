"""Where a model alias goes: the built-in scripted model, or an OpenAI-compatible HTTP upstream."""

from dataclasses import dataclass
from typing import Literal, get_args

from core.settings import Settings

# The API an upstream speaks: chat completions (translated to and from Responses items), or the Responses API
# itself, whose items then pass through unchanged.
UpstreamApi = Literal["chat", "responses"]
UPSTREAM_APIS: tuple[str, ...] = get_args(UpstreamApi)


@dataclass(frozen=True)
class ModelTarget:
    """An upstream endpoint for one alias (`base_url` None: the built-in scripted model)."""

    alias: str
    upstream_model: str
    base_url: str | None
    api_key: str | None
    context_window: int | None = None  # tokens, when the alias was registered with one
    cache_control: bool = False  # the upstream takes cache_control breakpoints on content parts
    api: UpstreamApi = "chat"

    @property
    def completions_url(self) -> str:
        """The upstream's chat completions endpoint."""
        return f"{self.base_url}/chat/completions"

    @property
    def responses_url(self) -> str:
        """The upstream's own Responses endpoint (an alias registered with api "responses")."""
        return f"{self.base_url}/responses"

    @property
    def headers(self) -> dict[str, str]:
        """Auth headers for the upstream (none without a key)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def default_target(settings: Settings, alias: str) -> ModelTarget | None:
    """The target of an alias nobody registered: the scripted model, else the default upstream, else none."""
    if alias == settings.scripted_model:
        return ModelTarget(alias, alias, None, None)
    if settings.upstream_base_url:
        return ModelTarget(alias, alias, settings.upstream_base_url, settings.upstream_api_key)
    return None
