"""Where a request may make the server fetch: remote MCP servers named in requests, and registered HTTP tools.

A URL is fetched only if its host matches `allowed_hosts`, and every address it resolves to is public or inside
`allowed_networks`: loopback, private, link-local and other special addresses are refused unless allowed, which is
checked on the resolved addresses, so a public name that resolves to 10.0.0.1 is refused too.
"""

import ipaddress
import json
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchRefused(Exception):
    """A URL this policy does not let the server fetch; the message says why."""


class FetchPolicy(BaseModel):
    """Settings (`AGENTRUNNER_FETCH__ALLOWED_HOSTS`, `…__ALLOWED_NETWORKS`); empty by default: nothing is fetched."""

    allowed_hosts: list[str] = Field(default_factory=list, description=(
        'host names or IP literals; "*.example.com" also matches its subdomains, "*" any host'))
    allowed_networks: list[str] = Field(default_factory=list, description=(
        'CIDRs in which non-public addresses are allowed, e.g. "127.0.0.0/8" or "10.1.0.0/16"'))

    def env(self) -> dict[str, str]:
        """The environment variables that give another process this policy."""
        return {"AGENTRUNNER_FETCH__ALLOWED_HOSTS": json.dumps(self.allowed_hosts),
                "AGENTRUNNER_FETCH__ALLOWED_NETWORKS": json.dumps(self.allowed_networks)}

    def host_of(self, url: str) -> str:
        """The host of an http(s) URL this policy lets through by name; FetchRefused otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused(f"{url!r} is not an http(s) URL")
        host = parts.hostname.lower().rstrip(".")
        if not any(_matches(host, pattern.lower()) for pattern in self.allowed_hosts):
            raise FetchRefused(f"host {host!r} is not in the allowed hosts (AGENTRUNNER_FETCH__ALLOWED_HOSTS)")
        return host

    def check_address(self, host: str, address: Address) -> None:
        """FetchRefused unless the address is public or in an allowed network."""
        if address.is_global and not address.is_multicast:
            return
        if any(address in ipaddress.ip_network(net, strict=False) for net in self.allowed_networks):
            return
        raise FetchRefused(f"host {host!r} resolves to {address}, a non-public address outside the allowed networks "
                           "(AGENTRUNNER_FETCH__ALLOWED_NETWORKS)")


def _matches(host: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host == pattern[2:] or host.endswith(pattern[1:])
    return host == pattern


LOOPBACK = FetchPolicy(allowed_hosts=["127.0.0.1", "localhost", "::1"], allowed_networks=["127.0.0.0/8", "::1/128"])
