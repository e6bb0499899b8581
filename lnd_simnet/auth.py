"""Macaroon check on every call, as LND's rpcperms interceptor does (errors are StatusCode.UNKNOWN)."""

from __future__ import annotations

import grpc

from lnd_simnet import macaroons

_READ, _WRITE = "read", "write"
PERMISSIONS: dict[str, tuple[str, str]] = {
    "/lnrpc.Lightning/GetInfo": ("info", _READ),
    "/lnrpc.Lightning/AddInvoice": ("invoices", _WRITE),
    "/lnrpc.Lightning/LookupInvoice": ("invoices", _READ),
    "/lnrpc.Lightning/ListInvoices": ("invoices", _READ),
    "/lnrpc.Lightning/SubscribeInvoices": ("invoices", _READ),
    "/lnrpc.Lightning/DecodePayReq": ("offchain", _READ),
    "/lnrpc.Lightning/ChannelBalance": ("offchain", _READ),
    "/lnrpc.Lightning/WalletBalance": ("onchain", _READ),
    "/lnrpc.Lightning/ListPayments": ("offchain", _READ),
    "/routerrpc.Router/SendPaymentV2": ("offchain", _WRITE),
    "/routerrpc.Router/TrackPaymentV2": ("offchain", _READ),
    "/routerrpc.Router/TrackPayments": ("offchain", _READ),
    "/invoicesrpc.Invoices/SubscribeSingleInvoice": ("invoices", _READ),
    "/invoicesrpc.Invoices/AddHoldInvoice": ("invoices", _WRITE),
    "/invoicesrpc.Invoices/SettleInvoice": ("invoices", _WRITE),
    "/invoicesrpc.Invoices/CancelInvoice": ("invoices", _WRITE),
    "/invoicesrpc.Invoices/LookupInvoiceV2": ("invoices", _WRITE),
}
CONTROL_PERMISSION = ("offchain", _WRITE)
_CACHE_MAX = 4096


class MacaroonInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, root_key: bytes) -> None:
        self._root_key = root_key
        self._verified: dict[str, frozenset[tuple[str, str]]] = {}

    def check(self, metadata, method: str) -> str | None:
        """None if allowed, else LND's error text."""
        values = [v for k, v in metadata or () if k == "macaroon"]
        if len(values) != 1:
            return f"expected 1 macaroon, got {len(values)}"
        mac_hex = values[0]
        ops = self._verified.get(mac_hex)
        if ops is None:
            try:
                raw = bytes.fromhex(mac_hex)
            except ValueError:
                return _hex_error(mac_hex)
            try:
                ops = macaroons.verify(self._root_key, raw)
            except macaroons.MacaroonError as exc:
                return str(exc)
            if len(self._verified) >= _CACHE_MAX:
                self._verified.clear()
            self._verified[mac_hex] = ops
        needed = PERMISSIONS.get(method, CONTROL_PERMISSION)
        if needed not in ops:
            return "permission denied"
        return None

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        error = self.check(handler_call_details.invocation_metadata, handler_call_details.method)
        if error is None:
            return handler
        return _refusing_handler(handler, error)


def _hex_error(text: str) -> str:
    for ch in text:
        if ch not in "0123456789abcdefABCDEF":
            return f"encoding/hex: invalid byte: U+{ord(ch):04X} {ch!r}"
    return "encoding/hex: odd length hex string"


def _refusing_handler(handler: grpc.RpcMethodHandler, error: str) -> grpc.RpcMethodHandler:
    async def refuse_unary(request, context):
        await context.abort(grpc.StatusCode.UNKNOWN, error)

    async def refuse_stream(request, context):
        await context.abort(grpc.StatusCode.UNKNOWN, error)
        yield  # pragma: no cover - makes this an async generator

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **kwargs)
    return grpc.unary_unary_rpc_method_handler(refuse_unary, **kwargs)
