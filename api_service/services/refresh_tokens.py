"""Rotating refresh tokens with theft detection.

A refresh token is 32 random bytes (urlsafe base64); only its sha256 is stored. Every use spends it
and issues a successor in the same *family* (one login session). Presenting a spent or revoked
token means two parties hold it, so the whole family is revoked: the thief's and the owner's
successors both stop working, and the owner logs in again.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.queries import refresh_tokens as queries
from shared.errors import TokenExpired, Unauthorized

TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class SpentToken:
    user_id: uuid.UUID
    family_id: uuid.UUID


class TokenReused(Unauthorized):
    """A spent or revoked refresh token was presented; its family has been revoked (commit it)."""

    default_message = "This refresh token is no longer valid; log in again"


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def issue(
    session: AsyncSession, *, user_id: uuid.UUID, ttl_s: int, family_id: uuid.UUID | None = None
) -> str:
    """Store a new token (a new family unless ``family_id`` is given) and return its plain value."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    await queries.insert_refresh_token(
        session,
        user_id=user_id,
        family_id=family_id or uuid.uuid4(),
        token_hash=hash_token(token),
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
    )
    return token


async def lookup(session: AsyncSession, token: str) -> SpentToken | None:
    """Who a token belongs to (whatever its state), without changing it; None if unknown."""
    known = await queries.get_refresh_token(session, hash_token(token))
    return None if known is None else SpentToken(user_id=known.user_id, family_id=known.family_id)


async def spend(session: AsyncSession, token: str) -> SpentToken:
    """Spend a live token. Raises Unauthorized (unknown), TokenExpired, or TokenReused after revoking
    the family; the caller must commit the revocation before answering."""
    token_hash = hash_token(token)
    row = await queries.spend_refresh_token(session, token_hash)
    if row is not None:
        return SpentToken(user_id=row.user_id, family_id=row.family_id)
    known = await queries.get_refresh_token(session, token_hash)
    if known is None:
        raise Unauthorized("Invalid refresh token")
    if known.used_at is not None or known.revoked_at is not None:
        await queries.revoke_family(session, known.family_id)
        raise TokenReused()
    raise TokenExpired("The refresh token has expired")


async def revoke_family_of(session: AsyncSession, token: str, *, user_id: uuid.UUID) -> None:
    """Revoke the family of ``token`` if it belongs to ``user_id`` (logout). Unknown or another
    user's token → Unauthorized; an already revoked family is fine (logout is idempotent)."""
    known = await queries.get_refresh_token(session, hash_token(token))
    if known is None or known.user_id != user_id:
        raise Unauthorized("Invalid refresh token")
    await queries.revoke_family(session, known.family_id)


async def revoke_all(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Revoke every session of a user (password change, deactivation)."""
    return await queries.revoke_user_tokens(session, user_id)
