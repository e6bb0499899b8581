"""Map a gRPC failure from LND (or lnd_simnet) to our LightningError tree.

LND reports most refusals as StatusCode.UNKNOWN with a Go error text, so the text decides:

    UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, INTERNAL,
    RESOURCE_EXHAUSTED, ABORTED, DATA_LOSS          -> LightningUnavailable (outcome unknown)
    UNAVAILABLE with a TLS handshake/cert failure   -> LightningAuthError
    UNAUTHENTICATED, PERMISSION_DENIED              -> LightningAuthError
    NOT_FOUND                                       -> LightningNotFound
    ALREADY_EXISTS "invoice is already paid"        -> PaymentAlreadySucceeded
    ALREADY_EXISTS (in transition / already exists) -> PaymentInFlight
    UNKNOWN + macaroon texts                        -> LightningAuthError
    UNKNOWN "wallet locked" / still starting        -> LightningUnavailable
    UNKNOWN "invoice with payment hash already exists" -> InvoiceAlreadyExists
    UNKNOWN "unable to locate invoice" & co. (older LND) -> LightningNotFound
    UNKNOWN "invoice is already paid" / "payment is in transition" (LND <= 0.14) -> as ALREADY_EXISTS
    anything else (UNKNOWN validation, INVALID_ARGUMENT, UNIMPLEMENTED, ...) -> LightningRequestError
"""

from __future__ import annotations

import grpc

from shared.errors import (
    InvoiceAlreadyExists,
    LightningAuthError,
    LightningError,
    LightningNotFound,
    LightningRequestError,
    LightningUnavailable,
    PaymentAlreadySucceeded,
    PaymentInFlight,
)

_TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.DATA_LOSS,
    }
)
_TLS_TEXTS = ("handshake failed", "certificate_verify_failed", "certificate verify failed", "ssl_error")
_AUTH_TEXTS = (
    "macaroon",
    "verification failed",
    "permission denied",
    "root key with id",
    "encoding/hex",
    "expected 1 macaroon",
)
_NOT_READY_TEXTS = ("wallet locked", "still in the process of starting", "waiting to start")
_NOT_FOUND_TEXTS = ("unable to locate invoice", "there are no existing invoices", "payment isn't initiated")
ALREADY_PAID_TEXT = "invoice is already paid"
_IN_FLIGHT_TEXTS = ("payment is in transition", "payment already exists")
_INVOICE_EXISTS_TEXT = "invoice with payment hash already exists"


def map_status(code: grpc.StatusCode, details: str | None) -> LightningError:
    """The LightningError for a gRPC status code and LND's error text."""
    text = details or ""
    low = text.lower()
    name = code.name
    if code in _TRANSIENT_CODES:
        if code is grpc.StatusCode.UNAVAILABLE and any(t in low for t in _TLS_TEXTS):
            return LightningAuthError(text, grpc_code=name)
        return LightningUnavailable(text, grpc_code=name)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return LightningAuthError(text, grpc_code=name)
    if code is grpc.StatusCode.NOT_FOUND:
        return LightningNotFound(text, grpc_code=name)
    if code is grpc.StatusCode.ALREADY_EXISTS:
        if ALREADY_PAID_TEXT in low:
            return PaymentAlreadySucceeded(text, grpc_code=name)
        if _INVOICE_EXISTS_TEXT in low:
            return InvoiceAlreadyExists(text, grpc_code=name)
        return PaymentInFlight(text, grpc_code=name)
    return _map_text(text, low, name)


def _map_text(text: str, low: str, name: str) -> LightningError:
    if any(t in low for t in _NOT_READY_TEXTS):
        return LightningUnavailable(text, grpc_code=name)
    if any(t in low for t in _AUTH_TEXTS):
        return LightningAuthError(text, grpc_code=name)
    if _INVOICE_EXISTS_TEXT in low:
        return InvoiceAlreadyExists(text, grpc_code=name)
    if any(t in low for t in _NOT_FOUND_TEXTS):
        return LightningNotFound(text, grpc_code=name)
    if ALREADY_PAID_TEXT in low:
        return PaymentAlreadySucceeded(text, grpc_code=name)
    if any(t in low for t in _IN_FLIGHT_TEXTS):
        return PaymentInFlight(text, grpc_code=name)
    return LightningRequestError(text, grpc_code=name)


def map_rpc_error(exc: BaseException) -> LightningError:
    """Translate an exception raised by a grpc.aio call (AioRpcError or a transport error)."""
    if isinstance(exc, LightningError):
        return exc
    if isinstance(exc, grpc.aio.AioRpcError):
        return map_status(exc.code(), exc.details())
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return map_status(exc.code(), exc.details() if hasattr(exc, "details") else str(exc))
    return LightningUnavailable(f"{type(exc).__name__}: {exc}")
