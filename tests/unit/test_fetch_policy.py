"""The fetch allow-list: host names first, then every address the host resolves to."""

import pytest

from activities.fetch_guard import check_url
from core.fetch_policy import LOOPBACK, FetchPolicy, FetchRefused


@pytest.mark.parametrize(("url", "hosts", "networks", "refused"), [
    ("http://8.8.8.8/mcp", ["8.8.8.8"], [], None),
    ("https://8.8.8.8/mcp", ["*"], [], None),
    ("http://8.8.8.8/mcp", [], [], "not in the allowed hosts"),
    ("ftp://8.8.8.8/x", ["*"], [], r"not an http\(s\) URL"),
    ("http://10.0.0.5/mcp", ["10.0.0.5"], [], "non-public address"),
    ("http://10.0.0.5/mcp", ["10.0.0.5"], ["10.0.0.0/8"], None),
    ("http://169.254.169.254/latest", ["*"], [], "non-public address"),  # cloud metadata: link-local
    ("http://[::1]:9/mcp", ["::1"], [], "non-public address"),
    ("http://localhost:9/mcp", ["localhost"], [], "non-public address"),  # by name, checked after resolution
    ("http://localhost:9/mcp", ["*.localhost", "localhost"], ["127.0.0.0/8", "::1/128"], None),
    ("http://sub.example.test/mcp", ["*.example.test"], [], "does not resolve"),  # matched by name, then resolved
    ("http://evil-example.test/mcp", ["*.example.test"], [], "not in the allowed hosts"),
])
async def test_check_url(url: str, hosts: list[str], networks: list[str], refused: str | None) -> None:
    policy = FetchPolicy(allowed_hosts=hosts, allowed_networks=networks)
    if refused is None:
        await check_url(url, policy)
    else:
        with pytest.raises(FetchRefused, match=refused):
            await check_url(url, policy)


def test_the_default_fetches_nothing_and_loopback_travels_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import Settings

    assert Settings(_env_file=None).fetch == FetchPolicy()
    for name, value in LOOPBACK.env().items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).fetch == LOOPBACK
