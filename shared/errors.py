"""The one error tree of lightning-wallet.

Every error a caller can see derives from :class:`AppError`: a stable ``code`` (UPPER_SNAKE, part of
the HTTP contract), a human ``message``, an HTTP ``status`` and optional ``details``. The API's error
middleware renders any ``AppError`` in the envelope of DESIGN §3; anything else becomes a 500 with a
logged error id and no internals in the body.

    AppError                       500 INTERNAL_ERROR (base; never raised directly for bad input)
    ├── ValidationError            400 VALIDATION_ERROR  (details: list of field errors)
    │   └── WebhookUrlNotAllowed   400 WEBHOOK_URL_NOT_ALLOWED (a webhook target refused by the
    │                              SSRF rules of shared.webhook_targets; also raised at delivery)
    ├── Unauthorized               401 UNAUTHORIZED
    │   ├── InvalidCredentials     401 INVALID_CREDENTIALS
    │   └── TokenExpired           401 TOKEN_EXPIRED
    ├── Forbidden                  403 FORBIDDEN
    ├── NotFound                   404 NOT_FOUND
    ├── MethodNotAllowed           405 METHOD_NOT_ALLOWED
    ├── Conflict                   409 CONFLICT
    │   ├── UsernameTaken          409 USERNAME_TAKEN
    │   ├── AlreadyPaid            409 ALREADY_PAID
    │   ├── PaymentInProgress      409 CONFLICT          (a payment of this hash is pending / in flight)
    │   └── IdempotencyConflict    409 IDEMPOTENCY_CONFLICT
    ├── PayloadTooLarge            413 PAYLOAD_TOO_LARGE
    ├── UnsupportedMediaType       415 UNSUPPORTED_MEDIA_TYPE
    ├── Unprocessable              422 UNPROCESSABLE
    │   ├── InsufficientBalance    422 INSUFFICIENT_BALANCE
    │   └── InvoiceExpired         422 INVOICE_EXPIRED
    ├── RateLimited                429 RATE_LIMITED      (retry_after_s → Retry-After header)
    └── ServiceUnavailable         503 UNAVAILABLE

    LightningError                 errors of the Lightning boundary (shared.lightning), raised by a
    │                              LightningClient; the worker decides what they mean for money
    ├── LightningUnavailable       transport failure or deadline: outcome unknown, retry later
    ├── LightningAuthError         macaroon/TLS refused: configuration, not transient
    ├── LightningNotFound          NOT_FOUND: unknown invoice or payment hash
    ├── PaymentAlreadySucceeded    ALREADY_EXISTS "invoice is already paid"
    ├── PaymentInFlight            ALREADY_EXISTS "payment is in transition" / "payment already exists"
    ├── InvoiceAlreadyExists       AddInvoice with a hash LND already has
    └── LightningRequestError      LND refused the request itself (bad/expired/wrong-network payreq,
                                   amount rules, self-payment, ...): permanent, do not retry
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of every error with a stable code that the API renders in the error envelope."""

    status: int = 500
    code: str = "INTERNAL_ERROR"
    default_message: str = "Internal server error"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)


class ValidationError(AppError):
    status, code, default_message = 400, "VALIDATION_ERROR", "The request is not valid"


class WebhookUrlNotAllowed(ValidationError):
    """A webhook URL that may not be called (not public, not http(s)). ``address`` is the refused
    address, for the operator's log only: telling a caller what an internal name resolves to would
    map the operator's network for them."""

    code, default_message = "WEBHOOK_URL_NOT_ALLOWED", "This webhook URL is not allowed"

    def __init__(self, message: str | None = None, *, details: Any = None, address: Any = None) -> None:
        super().__init__(message, details=details)
        self.address = address


class Unauthorized(AppError):
    status, code, default_message = 401, "UNAUTHORIZED", "Authentication required"


class InvalidCredentials(Unauthorized):
    code, default_message = "INVALID_CREDENTIALS", "Invalid username or password"


class TokenExpired(Unauthorized):
    code, default_message = "TOKEN_EXPIRED", "The token has expired"


class Forbidden(AppError):
    status, code, default_message = 403, "FORBIDDEN", "You are not allowed to do this"


class NotFound(AppError):
    status, code, default_message = 404, "NOT_FOUND", "Not found"


class MethodNotAllowed(AppError):
    status, code, default_message = 405, "METHOD_NOT_ALLOWED", "Method not allowed"


class Conflict(AppError):
    status, code, default_message = 409, "CONFLICT", "Conflict"


class UsernameTaken(Conflict):
    code, default_message = "USERNAME_TAKEN", "That username is taken"


class AlreadyPaid(Conflict):
    code, default_message = "ALREADY_PAID", "This invoice has already been paid"


class PaymentInProgress(Conflict):
    """Same wire code as Conflict; its own class so protocol adapters can tell it apart (LndHub 9)."""

    default_message = "A payment of this invoice is already in progress"


class IdempotencyConflict(Conflict):
    code = "IDEMPOTENCY_CONFLICT"
    default_message = "This Idempotency-Key was used with a different request"


class PayloadTooLarge(AppError):
    status, code, default_message = 413, "PAYLOAD_TOO_LARGE", "The request body is too large"


class UnsupportedMediaType(AppError):
    status, code, default_message = 415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json"


class Unprocessable(AppError):
    status, code, default_message = 422, "UNPROCESSABLE", "The request cannot be carried out"


class InsufficientBalance(Unprocessable):
    code, default_message = "INSUFFICIENT_BALANCE", "Insufficient balance"


class InvoiceExpired(Unprocessable):
    code, default_message = "INVOICE_EXPIRED", "The invoice has expired"


class RateLimited(AppError):
    status, code, default_message = 429, "RATE_LIMITED", "Too many requests"

    def __init__(self, message: str | None = None, *, retry_after_s: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = max(1, int(retry_after_s))


class ServiceUnavailable(AppError):
    status, code, default_message = 503, "UNAVAILABLE", "Service temporarily unavailable"


class LightningError(Exception):
    """Base of errors raised at the Lightning boundary (a LightningClient)."""

    def __init__(self, message: str = "", *, grpc_code: str | None = None) -> None:
        self.message = message
        self.grpc_code = grpc_code
        super().__init__(message)


class LightningUnavailable(LightningError):
    """The node could not be reached or did not answer in time; the outcome is unknown."""


class LightningAuthError(LightningError):
    """The node refused our credentials (macaroon, TLS)."""


class LightningNotFound(LightningError):
    """The node does not know the invoice or payment."""


class PaymentAlreadySucceeded(LightningError):
    """The node has already paid this payment hash."""


class PaymentInFlight(LightningError):
    """The node is already paying this payment hash."""


class InvoiceAlreadyExists(LightningError):
    """The node already has an invoice with this payment hash."""


class LightningRequestError(LightningError):
    """The node refused the request itself; sending it again cannot succeed."""
