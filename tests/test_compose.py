"""docker-compose.yml refers only to things that exist (no Docker engine here to run it)."""

import re
from pathlib import Path
from typing import Any

import yaml

from api.app import create_app
from core.settings import Settings
from stack.cli import build_parser
from stack.temporal import DEV_SERVER_DYNAMIC_CONFIG
from tests.helpers import repo_root

ROOT = repo_root()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = [name for name, svc in SERVICES.items() if svc.get("build") == "."]


def _setting_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"AGENTRUNNER_{name.upper()}")
        alias = field.validation_alias
        names.update(str(a) for a in getattr(alias, "choices", [alias] if alias else []))
    return names


def test_the_stack_has_every_part() -> None:
    assert {"postgres", "temporal", "temporal-ui", "migrate", "api", "worker"} <= set(SERVICES)
    assert set(OURS) == {"migrate", "api", "worker"}
    assert SERVICES["worker"]["deploy"]["replicas"] >= 2
    for name in ("postgres", "temporal", "api"):
        assert SERVICES[name]["healthcheck"]["test"], name


def test_api_health_check_asks_readiness_of_a_real_route() -> None:
    [url] = re.findall(r"http://127\.0\.0\.1:8000(/\w+)", " ".join(SERVICES["api"]["healthcheck"]["test"]))
    assert url == "/readyz"
    assert create_app(Settings(_env_file=None)).url_path_for("readyz") == url


def test_temporal_dynamic_config_matches_the_dev_server() -> None:
    mount = next(v for v in SERVICES["temporal"]["volumes"] if "dynamicconfig" in v)
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    # the partition count is the dev server's alone: a cluster with many workers keeps Temporal's default
    shared = {key for key in DEV_SERVER_DYNAMIC_CONFIG if not key.startswith("matching.numTaskqueue")}
    assert set(config) == shared
    for key in shared:
        assert config[key] == [{"value": DEV_SERVER_DYNAMIC_CONFIG[key]}], key


def test_depends_on_names_real_services() -> None:
    for name, svc in SERVICES.items():
        for dep in svc.get("depends_on", {}):
            assert dep in SERVICES, (name, dep)


def test_commands_exist_in_the_project() -> None:
    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name in OURS:
        command = SERVICES[name]["command"]
        if command[0] == "agentrunner":
            assert command[1] in subcommands, (name, command)
            build_parser().parse_args(command[1:])  # the flags parse
        else:
            assert command[:1] == ["python"] and (ROOT / command[1]).is_file(), (name, command)


def test_environment_names_are_settings() -> None:
    known = _setting_names()
    for name in OURS:
        for key in SERVICES[name]["environment"]:
            assert key in known, (name, key)


def test_bind_mounts_exist() -> None:
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), (name, source)


def test_dockerfile_copies_what_exists() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.M):
        *sources, _dest = line.split()
        for src in sources:
            assert (ROOT / src).exists(), src
    packages = set(re.findall(r'"([a-z_.]+)"', (ROOT / "pyproject.toml").read_text().split("packages = [")[1]
                               .split("]")[0]))
    copied = {Path(line.split()[0]).name for line in re.findall(r"^COPY (\S+) \./\S+$", dockerfile, flags=re.M)}
    assert {p.split(".")[0] for p in packages} <= copied
