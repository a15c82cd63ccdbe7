"""Which part of a retried attempt's text reaches the client."""

from core.stream_events import OpenText, PriorStep, TextReconciler, message_closed, message_opened, text_delta


def feed_all(r: TextReconciler, *deltas: str) -> list[str | None]:
    return [r.feed(d) for d in deltas]


def test_first_attempt_sends_everything() -> None:
    r = TextReconciler(None)
    assert feed_all(r, "Hel", "lo") == ["Hel", "lo"] and r.agrees_at_end()


def test_agreeing_retry_sends_only_what_is_new() -> None:
    r = TextReconciler(OpenText("msg_1", 0, "Hello wor"))
    assert feed_all(r, "Hel", "lo w", "orld", "!") == ["", "", "ld", "!"]
    assert r.agrees_at_end()


def test_retry_that_stops_exactly_where_the_client_is_agrees() -> None:
    r = TextReconciler(OpenText("msg_1", 0, "Hello"))
    assert feed_all(r, "Hel", "lo") == ["", ""] and r.agrees_at_end()


def test_disagreement_is_reported() -> None:
    assert feed_all(TextReconciler(OpenText("m", 0, "Hello wor")), "Hel", "p") == ["", None]
    assert feed_all(TextReconciler(OpenText("m", 0, "Hi")), "Hello") == [None]
    short = TextReconciler(OpenText("m", 0, "Hello world"))
    assert feed_all(short, "Hello") == [""] and not short.agrees_at_end()


def test_prior_step_is_rebuilt_from_the_log() -> None:
    events = [*message_opened("msg_a", 2), text_delta("msg_a", 2, "Hel"), text_delta("msg_a", 2, "lo")]
    assert PriorStep.from_events(events) == PriorStep(0, OpenText("msg_a", 2, "Hello"))
    closed = [*events, *message_closed("msg_a", 2, "Hello", "incomplete"), *message_opened("msg_b", 3)]
    assert PriorStep.from_events(closed) == PriorStep(1, OpenText("msg_b", 3, ""))
    assert PriorStep.from_events([]) == PriorStep()
