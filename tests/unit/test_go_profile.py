"""bench.go_profile: naming addresses of the stripped dev server binary, and grouping samples."""

from pathlib import Path

import pytest

from bench.go_profile import GoFunctions, grouped
from stack.temporal import temporal_binary


@pytest.mark.timeout(60)
def test_functions_of_the_stripped_temporal_binary_are_named() -> None:
    functions = GoFunctions(Path(temporal_binary()))
    assert len(functions.names) > 10_000
    main = functions.entries[functions.names.index("main.main")]
    assert functions.name(main) == functions.name(main + 1) == "main.main"
    assert functions.entries == sorted(functions.entries)
    assert any(n.startswith("go.temporal.io/server/service/history.") for n in functions.names)


@pytest.mark.timeout(10)
def test_a_sample_counts_under_the_first_group_its_stack_matches() -> None:
    visibility = ["modernc.org/sqlite/lib._sqlite3VdbeExec",
                  "go.temporal.io/server/service/history.(*visibilityQueueTaskExecutor).Execute", "runtime.goexit"]
    scheduler = ["[kernel]", "runtime.futex", "runtime.goexit"]
    shares = grouped([visibility, visibility, scheduler, ["net.(*conn).Read"]])
    assert shares["visibility records (SQLite)"] == 0.5
    assert shares["Go scheduler"] == 0.25 and shares["other"] == 0.25
    assert sum(shares.values()) == pytest.approx(1.0)
