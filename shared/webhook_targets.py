"""Which URLs a webhook may be sent to (SSRF rules), checked by the API and again at delivery.

The worker sits next to LND, Postgres and Redis, so a webhook URL is an attacker's way into that
network unless it is held to this rule: ``http``/``https`` only, and the host must be (or resolve
exclusively to) public unicast addresses. Refused: loopback, private (RFC 1918, fc00::/7),
link-local, unspecified, multicast, CGNAT 100.64/10, documentation, benchmarking and reserved
ranges, and the IPv6 forms that carry one of those IPv4 addresses (IPv4-mapped ``::ffff:a.b.c.d``,
NAT64 ``64:ff9b::a.b.c.d``; the deprecated IPv4-compatible ``::a.b.c.d``, 6to4 and Teredo ranges
are refused outright). IPv6 must be global unicast (2000::/3). ``WEBHOOK_ALLOWED_NETWORKS`` lets an
operator open specific networks (tests use 127.0.0.0/8); unspecified and multicast addresses stay
refused even then, since they are never one receiver.

Host spellings are read the way the HTTP client and the C resolver read them: the host is taken
from ``yarl.URL`` (aiohttp's own parser: IDNA, full-width digits and percent-escapes are
normalised or refused exactly as at connect time), and a host whose last label is numeric is an
IPv4 address in ``inet_aton`` syntax (``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``).
Only the canonical dotted quad is accepted; any other numeric spelling is refused whatever address
it means, because resolvers and HTTP clients disagree about them. The API checks the URL as given
(no DNS lookup: the answer could change before delivery anyway); the worker resolves the name once,
refuses if ANY address is refused, and connects to exactly those addresses (no second lookup, so
DNS rebinding gains nothing).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from yarl import URL

from shared.errors import WebhookUrlNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_NUMERIC_LABEL = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")
_CANONICAL_IPV4 = re.compile(
    r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$"
)

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# (network, why): IANA's special-purpose registries, the ranges that are not one public receiver.
REFUSED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared (CGNAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "reserved"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),
)
REFUSED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/96"), "IPv4-compatible (deprecated)"),
    (_V6("64:ff9b:1::/48"), "local NAT64"),
    (_V6("100::/64"), "discard-only"),
    (_V6("2001::/23"), "IETF protocol assignment (Teredo, ...)"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("2002::/16"), "6to4"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "segment routing"),
    (_V6("fc00::/7"), "private (unique local)"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
)
GLOBAL_UNICAST_V6 = _V6("2000::/3")
NAT64 = _V6("64:ff9b::/96")
# Never one receiver, whatever the operator allows.
ALWAYS_REFUSED = ("unspecified", "multicast")


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL that passed the static checks. ``addresses`` is set when the host is an IP
    literal; a name (``addresses is None``) must still be resolved and checked at delivery."""

    url: URL
    host: str
    port: int
    addresses: tuple[IPAddress, ...] | None


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``WEBHOOK_ALLOWED_NETWORKS``: comma-separated CIDRs (``10.1.0.0/16, fd00::/8``); ValueError
    names the bad entry. Host bits must be zero, so a typo does not silently widen the network."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a network in CIDR form ({exc})") from None
    return tuple(networks)


def parse_inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``host`` means to ``inet_aton`` (1 to 4 parts, each decimal, octal with a
    leading 0 or hex with 0x; the last part fills the remaining bytes), or None if it is not one."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if not _NUMERIC_LABEL.match(part):
            return None
        if part[:2].lower() == "0x":
            if len(part) == 2:
                return None
            values.append(int(part[2:], 16))
        elif len(part) > 1 and part.startswith("0"):
            if any(ch in "89" for ch in part):
                return None
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *leading, last = values
    if any(value > 0xFF for value in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for on the wire (IPv4-mapped, NAT64), if any."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not receive a webhook, or None when it may."""
    effective = embedded_ipv4(address) or address
    why = _category(effective)
    if why in ALWAYS_REFUSED:
        return why
    if any(effective in network or address in network for network in allowed):
        return None
    return why


def _category(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv4Address):
        table: Iterable[tuple[IPNetwork, str]] = REFUSED_V4
    else:
        table = REFUSED_V6
    for network, why in table:
        if address in network:
            return why
    if isinstance(address, ipaddress.IPv6Address) and address not in GLOBAL_UNICAST_V6:
        return "not global unicast"
    return None


def check_url(url: str, allowed: Sequence[IPNetwork] = ()) -> Target:
    """The static checks: scheme, host spelling, and the address of an IP literal. Raises
    :class:`WebhookUrlNotAllowed` saying why; a name still needs :func:`check_addresses` after DNS."""
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, TypeError):
        raise _refused("it is not a valid URL") from None
    if parsed.scheme not in SCHEMES:
        raise _refused("only http and https URLs are allowed")
    if parsed.user is not None or parsed.password is not None:
        raise _refused("the URL must not contain credentials")
    host = (parsed.raw_host or "").lower()
    if not host or port is None:
        raise _refused("the URL must have a host")
    literal = _ip_literal(host)
    if literal is not None:
        check_addresses([literal], allowed)
        return Target(parsed, host, port, (literal,))
    if not _NAME.match(host):
        raise _refused("the host name is not valid")
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        raise _refused("localhost names are loopback addresses")
    return Target(parsed, host, port, None)


def check_addresses(addresses: Iterable[IPAddress], allowed: Sequence[IPNetwork] = ()) -> None:
    """Refuse unless there is at least one address and EVERY address may receive a webhook."""
    found = list(addresses)
    if not found:
        raise _refused("the host has no address")
    for address in found:
        why = refusal(address, allowed)
        if why is not None:
            raise _refused(f"the host's address is not public ({why})", address=address)


def _ip_literal(host: str) -> IPAddress | None:
    """The address of an IP-literal host; raises for a numeric host that is not a canonical
    dotted quad (``127.1``, ``2130706433``, ``0x7f.1``, ``1.2.3.4.5``, ``08.1.1.1``)."""
    if ":" in host:
        if "%" in host:
            raise _refused("IPv6 zone identifiers are not allowed")
        try:
            return ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            raise _refused("the IPv6 address is not valid") from None
    last = host.rstrip(".").rsplit(".", 1)[-1] if host.rstrip(".") else ""
    if not _NUMERIC_LABEL.match(last):
        return None
    bare = host[:-1] if host.endswith(".") else host
    meant = parse_inet_aton(bare)
    if meant is None:
        raise _refused("the numeric host is not a valid IPv4 address")
    if bare != host or not _CANONICAL_IPV4.match(bare):
        why = _category(meant)
        raise _refused(
            f"write IPv4 addresses as a plain dotted quad ({host!r} means {meant}"
            + (f", a {why} address)" if why else ")")
        )
    return meant


def _refused(reason: str, *, address: IPAddress | None = None) -> WebhookUrlNotAllowed:
    return WebhookUrlNotAllowed(
        f"webhookUrl is not allowed: {reason}",
        details=[{"field": "webhookUrl", "message": reason}],
        address=address,
    )
