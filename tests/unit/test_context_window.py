"""Estimating and trimming a conversation for a context window."""

from core.context_window import estimate_tokens, truncate_oldest


def test_estimate_is_about_four_characters_a_token() -> None:
    assert estimate_tokens("x" * 398) == 100  # 400 characters with the JSON quotes


def test_truncation_keeps_system_and_newest_and_whole_tool_turns() -> None:
    messages = [{"role": "system", "content": "rules"},
                {"role": "user", "content": "a" * 200},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
                {"role": "tool", "tool_call_id": "c1", "content": "b" * 200},
                {"role": "user", "content": "newest"}]
    assert truncate_oldest(messages, 10_000) == messages
    kept = truncate_oldest(messages, 60)
    assert kept == [messages[0], messages[4]]  # the tool result went with its call
    assert truncate_oldest(messages, 1)[-1] == messages[4]  # the newest stays even when nothing fits
