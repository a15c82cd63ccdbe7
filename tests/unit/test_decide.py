"""The loop's pure decision function."""

from core.contracts import ModelTurn, ToolCallRef, ToolResult
from core.usage import Usage
from workflows.decide import CallModel, CompactContext, Finish, LoopState, RunTools, decide


def turn(seq: int, *calls: tuple[str, bool], finish: str = "stop") -> ModelTurn:
    return ModelTurn(seq=seq, finish_reason=finish,
                     tool_calls=[ToolCallRef(call_id=f"c{seq}{i}", name=n, server_side=s)
                                 for i, (n, s) in enumerate(calls)])


def run(state: LoopState, max_model_calls: int = 8, max_tool_calls: int | None = None) -> object:
    return decide(state, max_model_calls=max_model_calls, max_tool_calls=max_tool_calls)


def test_first_step_calls_the_model() -> None:
    assert run(LoopState()) == CallModel()
    assert LoopState().next_seq == 1


def test_text_answer_finishes() -> None:
    assert run(LoopState([turn(1)])) == Finish("completed")


def test_length_finish_is_incomplete() -> None:
    assert run(LoopState([turn(1, finish="length")])) == Finish("incomplete", "max_output_tokens")


def test_server_calls_run_together_then_model_again() -> None:
    state = LoopState([turn(1, ("a", True), ("b", True))])
    decision = run(state)
    assert isinstance(decision, RunTools) and [c.name for c in decision.calls] == ["a", "b"]
    state.tool_results += [ToolResult(seq=2, call_id="c10", ok=True), ToolResult(seq=3, call_id="c11", ok=False)]
    assert state.next_seq == 4
    assert run(state) == CallModel()


def test_client_calls_finish_completed() -> None:
    assert run(LoopState([turn(1, ("client_fn", False))])) == Finish("completed")


def test_mixed_turn_runs_server_side_first_then_hands_back() -> None:
    state = LoopState([turn(1, ("srv", True), ("cli", False))])
    decision = run(state)
    assert isinstance(decision, RunTools) and [c.name for c in decision.calls] == ["srv"]
    state.tool_results.append(ToolResult(seq=2, call_id="c10", ok=True))
    assert run(state) == Finish("completed")


def test_tool_cap_is_incomplete() -> None:
    state = LoopState([turn(1, ("a", True), ("b", True))])
    assert run(state, max_tool_calls=1) == Finish("incomplete", "max_messages")
    assert isinstance(run(state, max_tool_calls=2), RunTools)


def test_model_call_cap_is_incomplete() -> None:
    state = LoopState([turn(1, ("a", True))], [ToolResult(seq=2, call_id="c10", ok=True)])
    assert run(state, max_model_calls=1) == Finish("incomplete", "max_messages")
    assert run(state, max_model_calls=2) == CallModel()


def test_a_turn_past_the_compaction_threshold_is_compacted_once_before_the_next_call() -> None:
    big = turn(1, ("search", True))
    big.usage = Usage(input_tokens=900, output_tokens=100)
    state = LoopState([big], [ToolResult(seq=2, call_id="c10", ok=True)])
    assert decide(state, max_model_calls=8, max_tool_calls=None, compact_threshold=1000) == CompactContext()
    assert decide(state, max_model_calls=8, max_tool_calls=None, compact_threshold=1001) == CallModel()
    assert decide(state, max_model_calls=8, max_tool_calls=None) == CallModel()
    state.compacted_at.append(1)
    assert decide(state, max_model_calls=8, max_tool_calls=None, compact_threshold=1000) == CallModel()
    assert state.next_seq == 4 and state.output_count == 1  # the compaction's item counts as output
