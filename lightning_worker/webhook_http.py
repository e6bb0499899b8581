"""One HTTP attempt of a webhook: check the target, resolve it once, POST to exactly those addresses.

The order matters for SSRF (shared/webhook_targets.py): the URL is checked, the host is resolved
ONCE through ``resolver`` (injectable: tests use a stub, never the network), the attempt is refused
if ANY address is refused, and the connection then goes through a connector whose resolver can
only return those checked addresses for that host. aiohttp keeps the host name for the Host header
and for TLS (SNI and certificate verification), so HTTPS still proves who answered. Redirects are
never followed (a 3xx is a failed attempt), proxies from the environment are ignored, and each
attempt gets its own connector that is closed afterwards, so no pooled connection outlives its check.

A receiver cannot hold or bloat the worker: connect within 5 s, everything within 10 s, at most
64 KiB of the response read (raw, not decompressed), then the connection is closed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from shared.errors import WebhookUrlNotAllowed
from shared.webhook_targets import IPAddress, IPNetwork, Target, check_addresses, check_url

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
MAX_ERROR_CHARS = 300

Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for ``host`` (IPv4 and IPv6)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """``error`` is None for a 2xx answer. ``refused``: the target broke the rules, so there is no
    point in retrying. ``bytes_read``: how much of the response body was read (at most 64 KiB)."""

    status_code: int | None
    error: str | None
    refused: bool = False
    bytes_read: int = 0

    @property
    def delivered(self) -> bool:
        return self.error is None


class PinnedResolver(AbstractResolver):
    """Resolves only the checked host, and only to the checked addresses."""

    def __init__(self, host: str, addresses: Sequence[IPAddress]) -> None:
        self._host = host.lower()
        self._addresses = tuple(addresses)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.lower() != self._host:
            raise OSError(f"refusing to resolve {host!r}: not the checked webhook host")
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": socket.IPPROTO_TCP,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self._addresses
        ]

    async def close(self) -> None:
        pass


async def checked_addresses(
    target: Target, allowed: Sequence[IPNetwork], resolver: Resolver
) -> tuple[IPAddress, ...]:
    """The addresses to connect to: the literal, or the name resolved once and every answer
    checked. Raises WebhookUrlNotAllowed, or OSError / TimeoutError when the name does not resolve."""
    if target.addresses is not None:
        return target.addresses
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        addresses = tuple(await resolver(target.host.rstrip("."), target.port))
    check_addresses(addresses, allowed)
    return addresses


async def post(
    url: str, body: bytes, headers: dict[str, str], *, allowed: Sequence[IPNetwork], resolver: Resolver
) -> AttemptResult:
    """One attempt (see the module docstring). Never raises for anything the receiver does."""
    deadline = asyncio.get_running_loop().time() + TOTAL_TIMEOUT_S  # DNS included
    try:
        target = check_url(url, allowed)
        addresses = await checked_addresses(target, allowed, resolver)
    except WebhookUrlNotAllowed as exc:
        # The caller sees the reason; only the operator's log names the refused address.
        log.warning("webhook target refused: %s (address %s)", exc.message, exc.address)
        return AttemptResult(None, f"refused: {exc.details[0]['message']}", refused=True)
    except (OSError, TimeoutError, UnicodeError) as exc:
        return AttemptResult(None, f"the host name did not resolve ({type(exc).__name__})")
    status: int | None = None
    try:
        async with asyncio.timeout_at(deadline), _session(target, addresses) as http:
            async with http.post(target.url, data=body, headers=headers, allow_redirects=False) as response:
                status = response.status
                read = await _read_limited(response, MAX_RESPONSE_BYTES)
    except TimeoutError:
        if status is not None:  # answered, then the body was slow: the status is the answer
            return _answered(status, 0)
        return AttemptResult(None, f"no answer within {TOTAL_TIMEOUT_S:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        if status is not None:
            return _answered(status, 0)
        return AttemptResult(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
    return _answered(status, read)


def _answered(status: int, read: int) -> AttemptResult:
    if 200 <= status < 300:
        return AttemptResult(status, None, bytes_read=read)
    if 300 <= status < 400:
        return AttemptResult(status, f"HTTP {status} (redirects are not followed)", bytes_read=read)
    return AttemptResult(status, f"HTTP {status}", bytes_read=read)


def _session(target: Target, addresses: Sequence[IPAddress]) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(target.host, addresses), use_dns_cache=False, force_close=True, limit=1
    )
    timeout = aiohttp.ClientTimeout(total=TOTAL_TIMEOUT_S, sock_connect=CONNECT_TIMEOUT_S)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False, trust_env=False)


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> int:
    """Read at most ``limit`` bytes of the body, then stop (the connection is closed after)."""
    read = 0
    while read < limit:
        chunk = await response.content.read(limit - read)
        if not chunk:
            break
        read += len(chunk)
    return read
