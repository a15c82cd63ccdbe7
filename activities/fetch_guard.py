"""Checking a URL against the fetch policy, on the addresses its host resolves to now."""

import asyncio
import ipaddress
import socket

from core.fetch_policy import FetchPolicy, FetchRefused


async def check_url(url: str, policy: FetchPolicy) -> None:
    """FetchRefused unless `policy` lets the server fetch `url` (its host by name, then every resolved address)."""
    host = policy.host_of(url)
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        policy.check_address(host, literal)
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FetchRefused(f"host {host!r} does not resolve: {exc}") from exc
    for info in infos:
        policy.check_address(host, ipaddress.ip_address(info[4][0]))
