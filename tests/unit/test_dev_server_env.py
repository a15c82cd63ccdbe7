"""dev_server_env: the Temporal dev server runs on half the cores unless GOMAXPROCS is set."""

import pytest

from stack.temporal import dev_server_env


@pytest.mark.timeout(10)
def test_half_the_cores_at_least_one() -> None:
    assert dev_server_env({}, 2) == {"GOMAXPROCS": "1"}
    assert dev_server_env({}, 1)["GOMAXPROCS"] == "1"
    assert dev_server_env({"PATH": "/bin"}, 8) == {"GOMAXPROCS": "4", "PATH": "/bin"}


@pytest.mark.timeout(10)
def test_an_explicit_gomaxprocs_wins() -> None:
    assert dev_server_env({"GOMAXPROCS": "3"}, 2)["GOMAXPROCS"] == "3"
