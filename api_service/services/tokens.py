"""Access tokens: JWT HS256 with the algorithm pinned, so `alg: none` or another algorithm is refused."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from shared.config import Settings
from shared.errors import TokenExpired, Unauthorized

ALGORITHM = "HS256"
ACCESS = "access"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    role: str
    jti: str
    expires_at: int


def issue_access_token(
    settings: Settings,
    *,
    user_id: uuid.UUID,
    role: str,
    now: float | None = None,
    ttl_s: int | None = None,
) -> str:
    """An access token living ``ttl_s`` seconds (default ACCESS_TOKEN_TTL)."""
    issued_at = int(now if now is not None else time.time())
    claims = {
        "sub": str(user_id),
        "role": role,
        "type": ACCESS,
        "iat": issued_at,
        "exp": issued_at + (settings.access_token_ttl if ttl_s is None else ttl_s),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_key, algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """Verify signature, expiry and type. Raises TokenExpired or Unauthorized."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_key,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "type", "iat", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired() from None
    except jwt.PyJWTError:
        raise Unauthorized("Invalid access token") from None
    if claims.get("type") != ACCESS:
        raise Unauthorized("Invalid access token")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise Unauthorized("Invalid access token") from None
    return AccessClaims(
        user_id=user_id,
        role=str(claims.get("role", "")),
        jti=str(claims["jti"]),
        expires_at=int(claims["exp"]),
    )
