"""Idempotency-Key handling for POST /invoices and POST /payments.

- A key is per user (table ``idempotency_keys``, primary key (user_id, key)) and is bound to a
  fingerprint of the request: sha256 of method, path and the canonical JSON of the validated body.
- The key row is inserted in the SAME transaction as the resource row (and the payment's hold), before
  them, so a crash can never leave one without the other, and a concurrent request with the same key
  waits on the key's unique index and then sees the committed row (``ON CONFLICT DO NOTHING``).
- After the request has its answer, the status and data are stored on the key row; a repeat returns them
  exactly, except a 202 (not final yet), which is never replayed stale: a repeat then gets the
  resource's current state, as one does that arrives while the first request is still running.
- The fingerprint is of the validated body, which normalises what means the same (a payment request
  with a ``lightning:`` prefix or in upper case is the same request).
- Errors (4xx) are not stored: the transaction that would have held the key rolled back, so a retry is
  evaluated afresh. Keys older than IDEMPOTENCY_TTL_S are purged by a worker cron.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.outages import is_dependency_outage
from shared.db.models import IdempotencyKey
from shared.db.queries import wallet as queries
from shared.errors import IdempotencyConflict, ValidationError

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")

log = logging.getLogger("api.idempotency")


@dataclass(frozen=True, slots=True)
class IdempotencyRequest:
    key: str
    endpoint: str  # "POST /api/v1/payments"
    request_hash: bytes


def parse_key(header_value: str | None) -> str | None:
    """The validated header value (None when the header is absent). 1..255 printable ASCII characters."""
    if header_value is None:
        return None
    if not _KEY.match(header_value):
        raise ValidationError(
            f"{HEADER} must be 1 to 255 printable ASCII characters",
            details=[{"field": HEADER, "message": "1 to 255 printable ASCII characters"}],
        )
    return header_value


def fingerprint(method: str, path: str, body: dict[str, Any]) -> bytes:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{method.upper()}\n{path}\n{canonical}".encode()).digest()


def build_request(
    header_value: str | None, method: str, path: str, body: dict[str, Any]
) -> IdempotencyRequest | None:
    key = parse_key(header_value)
    if key is None:
        return None
    return IdempotencyRequest(
        key=key, endpoint=f"{method.upper()} {path}", request_hash=fingerprint(method, path, body)
    )


async def find(
    sessions: async_sessionmaker[AsyncSession],
    user_id: uuid.UUID,
    request: IdempotencyRequest,
) -> IdempotencyKey | None:
    """The key row of an earlier request with this key, or None. IdempotencyConflict if that request
    had a different method, path or body."""
    async with sessions() as session:
        row = await queries.get_idempotency_key(session, user_id, request.key)
    if row is None:
        return None
    if row.request_hash != request.request_hash or row.endpoint != request.endpoint:
        raise IdempotencyConflict()
    return row


async def claim(
    session: AsyncSession, user_id: uuid.UUID, request: IdempotencyRequest, resource_id: uuid.UUID
) -> bool:
    """Insert the key row inside the caller's transaction; False if another request holds the key."""
    return await queries.claim_idempotency_key(
        session,
        user_id=user_id,
        key=request.key,
        endpoint=request.endpoint,
        request_hash=request.request_hash,
        resource_id=resource_id,
    )


async def remember(
    sessions: async_sessionmaker[AsyncSession],
    user_id: uuid.UUID,
    request: IdempotencyRequest | None,
    status: int,
    data: Any,
) -> None:
    """Store the answer for repeats. A failure here is logged, not raised: the resource exists and a
    repeat still finds it through ``resource_id``."""
    if request is None:
        return
    try:
        async with sessions() as session, session.begin():
            await queries.store_idempotent_response(
                session, user_id=user_id, key=request.key, status=status, body=data
            )
    except Exception as exc:
        # Postgres dropped the connection (pg_terminate_backend, a restart): nothing is lost, the
        # resource and its key row are committed, so this is worth a warning, not an error.
        if not is_dependency_outage(exc):
            log.exception("could not store the idempotent response", extra={"key_endpoint": request.endpoint})
            return
        log.warning(
            "could not store the idempotent response (%s); a repeat reads the resource instead",
            type(exc).__name__,
            extra={"key_endpoint": request.endpoint},
        )
