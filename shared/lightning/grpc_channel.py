"""A grpc.aio channel to LND: the node's tls.cert pinned as the only root CA, and the macaroon
(hex) sent as ``macaroon`` metadata on every call via composite channel credentials.

Keepalive: HTTP/2 pings every ``keepalive_time_s`` (also with no call open), and a transport that
does not answer within ``keepalive_timeout_s`` is closed, so a half-open connection (the node's end
gone without a FIN) fails its streams instead of leaving them silent forever. LND accepts pings at
most every 5 s (its keepalive enforcement policy), so the interval stays at or above that."""

from __future__ import annotations

import os
import re
from pathlib import Path

import grpc

# LND's certificate is ECDSA; older gRPC cipher defaults had no ECDSA suites (LND's docs set it).
os.environ.setdefault("GRPC_SSL_CIPHER_SUITES", "HIGH+ECDSA")

MAX_MESSAGE_BYTES = 50 * 1024 * 1024
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Reconnect quickly after a node restart instead of gRPC's 1 s..120 s default backoff.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
)
DEFAULT_KEEPALIVE_TIME_S = 30.0
DEFAULT_KEEPALIVE_TIMEOUT_S = 10.0


def keepalive_options(time_s: float, timeout_s: float) -> tuple[tuple[str, int], ...]:
    return (
        ("grpc.keepalive_time_ms", int(time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),  # keep pinging a quiet stream
        # This gRPC core applies the ping timeout below to keepalive pings too: without it an
        # unanswered ping never closes the transport (checked with a half-open proxy in the tests).
        ("grpc.http2.ping_timeout_ms", int(timeout_s * 1000)),
    )


class _MacaroonAuth(grpc.AuthMetadataPlugin):
    def __init__(self, macaroon_hex: str) -> None:
        self._metadata = (("macaroon", macaroon_hex),)

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        callback(self._metadata, None)


def channel_credentials(tls_cert_pem: bytes, macaroon_hex: str) -> grpc.ChannelCredentials:
    """TLS pinned to the node's certificate, plus the macaroon on every call."""
    return grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=tls_cert_pem),
        grpc.metadata_call_credentials(_MacaroonAuth(macaroon_hex), name="macaroon"),
    )


def macaroon_metadata(macaroon_hex: str) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries the macaroon, for channels opened without it (see open_channel)."""
    return (("macaroon", macaroon_hex),)


def open_channel(
    host: str,
    tls_cert_pem: bytes,
    macaroon_hex: str | None,
    *,
    keepalive_time_s: float = DEFAULT_KEEPALIVE_TIME_S,
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S,
) -> grpc.aio.Channel:
    """An aio secure channel to ``host`` ("ip:port"); call inside the event loop that uses it.

    ``macaroon_hex=None``: TLS only, each call passes ``metadata=macaroon_metadata(...)`` itself. That
    is what GrpcLightningClient does: gRPC runs a metadata plugin (call credentials) on a new Python
    thread for every call, which cost the worker about a fifth of its CPU per invoice created."""
    credentials = (
        grpc.ssl_channel_credentials(root_certificates=tls_cert_pem)
        if macaroon_hex is None
        else channel_credentials(tls_cert_pem, macaroon_hex)
    )
    return grpc.aio.secure_channel(
        host,
        credentials,
        options=CHANNEL_OPTIONS + keepalive_options(keepalive_time_s, keepalive_timeout_s),
    )


def read_macaroon_hex(macaroon_path_or_hex: str | os.PathLike[str]) -> str:
    """A macaroon given as a file path (binary, as LND writes it) or already as hex."""
    value = os.fspath(macaroon_path_or_hex)
    if not value.endswith(".macaroon") and _HEX_RE.match(value) and len(value) % 2 == 0:
        return value.lower()
    return Path(value).read_bytes().hex()
