"""cache_control breakpoints on content parts: checked before anything is stored, at most four."""

import pytest

from core.errors import InvalidCacheControl
from core.wire import normalize_input

ENABLED = ("5m", "1h")


def part(marker: object) -> dict[str, object]:
    return {"type": "input_text", "text": "long prefix", "cache_control": marker}


def test_valid_breakpoints_are_kept_on_their_parts() -> None:
    items = normalize_input([{"role": "user", "content": [part({"type": "ephemeral"}),
                                                           part({"type": "ephemeral", "ttl": "1h"})]}],
                            cache_ttls=ENABLED)
    assert [p["cache_control"] for p in items[0]["content"]] == [{"type": "ephemeral"},
                                                                 {"type": "ephemeral", "ttl": "1h"}]


@pytest.mark.parametrize(("marker", "reason"), [
    ({"type": "ephemeral", "ttl": "24h"}, "disabled_ttl"),
    ({"type": "ephemeral", "ttl": "2d"}, "unknown_ttl"),
    ({"type": "persistent"}, "unknown_type"),
    ("ephemeral", "malformed"),
    ({"type": "ephemeral", "scope": "global"}, "malformed"),
])
def test_bad_breakpoints_name_the_part_and_the_enabled_tiers(marker: object, reason: str) -> None:
    with pytest.raises(InvalidCacheControl) as info:
        normalize_input([{"role": "user", "content": ["x", part(marker)][1:]}], cache_ttls=ENABLED)
    err = info.value
    assert (err.reason, err.code, err.param) == (reason, "invalid_cache_control", "input[0].content[0].cache_control")
    assert "5m, 1h" in err.message and err.envelope()["error"]["type"] == "invalid_request_error"


def test_at_most_four_breakpoints() -> None:
    five = [{"role": "user", "content": [part({"type": "ephemeral"})]} for _ in range(5)]
    assert len(normalize_input(five[:4], cache_ttls=ENABLED)) == 4
    with pytest.raises(InvalidCacheControl) as info:
        normalize_input(five, cache_ttls=ENABLED)
    assert info.value.reason == "too_many" and info.value.param == "input[4].content[0].cache_control"
