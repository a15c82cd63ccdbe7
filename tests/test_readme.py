"""The README keeps its promises: every setting documented, the two commands present."""

from pydantic import BaseModel

from core.settings import Settings
from tests.helpers import repo_root

README = (repo_root() / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    for name, field in Settings.model_fields.items():
        if isinstance(field.default, BaseModel):  # a nested group: each of its fields is a variable of its own
            for inner in type(field.default).model_fields:
                variable = f"AGENTRUNNER_{name.upper()}__{inner.upper()}"
                assert f"| `{variable}` |" in README, f"setting {variable} is not documented"
            continue
        alias = field.validation_alias
        names = [f"AGENTRUNNER_{name.upper()}"]
        if alias is not None:
            names += [str(a) for a in getattr(alias, "choices", [alias])]
        assert any(f"| `{n}` |" in README for n in names), f"setting {name} is not documented"


def test_the_two_commands_are_documented() -> None:
    assert "make dev" in README and "make test" in README
    ci = (repo_root() / ".ci" / "run").read_text()
    assert "make test" in ci
