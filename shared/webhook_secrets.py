"""Per-user webhook signing secrets: made, kept encrypted, rotated, and used to sign.

A secret is ``whsec_`` + base64 of 32 random bytes (the Standard Webhooks format; receivers pass it
as is to any Standard Webhooks verifier). Both services need it in plain text (the API shows it to
its owner, the worker signs with it), so it cannot be hashed; it is stored sealed with AES-256-GCM
under a key derived (HKDF-SHA256) from ``WEBHOOK_SECRET_KEY``, with the owner's id as associated
data, so a database dump or backup alone reveals no secret and a sealed secret copied onto another
user's row does not open. The first byte of a sealed value is a format version, leaving room to
re-seal under a new key later. Secrets never go into logs, job arguments or error messages.

Rotation keeps the previous secret valid for :data:`PREVIOUS_VALID_S` (24 h): until then every
delivery carries one signature per valid secret, newest first, space-separated as the spec allows,
so a receiver can switch secrets without dropping a delivery. Signing itself is the
``standardwebhooks`` package (the spec's reference implementation), not our own HMAC code.
"""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from shared.config import Settings
from shared.db.models import WebhookSecret

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
SECRET_BYTES = 32
PREVIOUS_VALID_S = 24 * 3600
_FORMAT_V1 = b"\x01"
_NONCE_BYTES = 12
_KDF_INFO = b"lightning-wallet webhook secrets v1"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class SecretBox:
    """Seals and opens secrets for one owner (AES-256-GCM, owner id as associated data)."""

    def __init__(self, master_key: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(master_key)
        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(settings.webhook_key)

    def seal(self, user_id: uuid.UUID, secret: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _FORMAT_V1 + nonce + self._aead.encrypt(nonce, secret.encode(), _aad(user_id))

    def open(self, user_id: uuid.UUID, sealed: bytes) -> str:
        if sealed[:1] != _FORMAT_V1:
            raise ValueError("unknown sealed secret format")
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, _aad(user_id)).decode()
        except InvalidTag:
            raise ValueError("the sealed secret does not open with this key and owner") from None


def _aad(user_id: uuid.UUID) -> bytes:
    return b"webhook-secret:" + user_id.bytes


async def current_secret(session: AsyncSession, box: SecretBox, user_id: uuid.UUID) -> str:
    """The user's active secret, created on first use (concurrent first uses agree on one)."""
    sealed = await session.scalar(_active(user_id))
    if sealed is None:
        await session.execute(
            insert(WebhookSecret)
            .values(user_id=user_id, sealed=box.seal(user_id, new_secret()))
            .on_conflict_do_nothing(index_elements=["user_id"], index_where=text("expires_at IS NULL"))
        )
        sealed = await session.scalar(_active(user_id))
    assert sealed is not None
    return box.open(user_id, sealed)


async def rotate_secret(session: AsyncSession, box: SecretBox, user_id: uuid.UUID) -> str:
    """A new active secret; the one it replaces stays valid for signatures for 24 h. Run inside
    the caller's transaction (concurrent rotations of one user are serialised by a lock)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('webhook_secret:' || :user_id, 0))"),
        {"user_id": str(user_id)},
    )
    await session.execute(
        delete(WebhookSecret).where(WebhookSecret.user_id == user_id, WebhookSecret.expires_at <= func.now())
    )
    await session.execute(
        update(WebhookSecret)
        .where(WebhookSecret.user_id == user_id, WebhookSecret.expires_at.is_(None))
        .values(expires_at=func.now() + timedelta(seconds=PREVIOUS_VALID_S))
    )
    secret = new_secret()
    session.add(WebhookSecret(user_id=user_id, sealed=box.seal(user_id, secret)))
    await session.flush()
    return secret


async def signing_secrets(session: AsyncSession, box: SecretBox, user_id: uuid.UUID) -> list[str]:
    """Every secret a delivery must be signed with now: the active one first, then any replaced
    one still inside its 24 h."""
    rows = await session.scalars(
        select(WebhookSecret.sealed)
        .where(
            WebhookSecret.user_id == user_id,
            or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > func.now()),
        )
        .order_by(WebhookSecret.expires_at.is_not(None), WebhookSecret.id.desc())
    )
    found = [box.open(user_id, sealed) for sealed in rows]
    return found or [await current_secret(session, box, user_id)]


def signature_header(secrets_: list[str], webhook_id: str, timestamp: datetime, body: str) -> str:
    """``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` per secret."""
    return " ".join(Webhook(secret).sign(webhook_id, timestamp, body) for secret in secrets_)


def _active(user_id: uuid.UUID):
    return select(WebhookSecret.sealed).where(
        WebhookSecret.user_id == user_id, WebhookSecret.expires_at.is_(None)
    )
