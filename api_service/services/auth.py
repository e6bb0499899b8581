"""Register, log in, refresh and log out: the rules around credentials and token pairs.

Failed logins all look alike: unknown name, wrong password and deactivated account give the same
InvalidCredentials after the same amount of bcrypt work (a dummy hash stands in for unknown names).
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service import ratelimit
from api_service.services import passwords, refresh_tokens
from api_service.services.tokens import issue_access_token
from api_service.services.users import create_user, insert_user_with_account
from shared.config import Settings
from shared.db.models import User
from shared.db.queries import users as queries
from shared.errors import Forbidden, InvalidCredentials, ServiceUnavailable, Unauthorized, UsernameTaken

RATE_WINDOW_S = 60
GENERATED_LOGIN_BYTES = 10  # 20 hex characters: a valid username
GENERATED_PASSWORD_BYTES = 20  # 40 hex characters, 160 bits (bcrypt reads up to 72 bytes)


@dataclass(frozen=True, slots=True)
class GeneratedCredentials:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class TokenPair:
    user: User
    access_token: str
    refresh_token: str
    expires_in: int


def _role_for(settings: Settings, admin_key: str | None) -> str:
    if admin_key is None:
        return "user"
    expected = settings.admin_key.get_secret_value() if settings.admin_key is not None else None
    # A wrong key is refused outright rather than silently creating a normal user.
    if expected is None or not hmac.compare_digest(admin_key.encode(), expected.encode()):
        raise Forbidden("Invalid admin key")
    return "admin"


async def _pair(
    session: AsyncSession,
    settings: Settings,
    user: User,
    family_id: uuid.UUID | None = None,
    access_ttl_s: int | None = None,
) -> TokenPair:
    refresh = await refresh_tokens.issue(
        session, user_id=user.id, ttl_s=settings.refresh_token_ttl, family_id=family_id
    )
    ttl_s = settings.access_token_ttl if access_ttl_s is None else access_ttl_s
    access = issue_access_token(settings, user_id=user.id, role=user.role, ttl_s=ttl_s)
    return TokenPair(user=user, access_token=access, refresh_token=refresh, expires_in=ttl_s)


async def register(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    redis: Redis,
    *,
    username: str,
    password: str,
    admin_key: str | None,
    client_ip: str,
) -> TokenPair:
    """Create a user (admin if ``admin_key`` matches ADMIN_KEY) with its ledger account and a first pair."""
    await _count_registration(redis, settings, client_ip)
    role = _role_for(settings, admin_key)
    password_hash = await passwords.hash_password(password, settings.bcrypt_cost)
    async with sessions() as session, session.begin():
        user = await insert_user_with_account(
            session, username=username, password_hash=password_hash, role=role
        )
        return await _pair(session, settings, user)


async def _count_registration(redis: Redis, settings: Settings, client_ip: str) -> None:
    await ratelimit.hit(redis, f"register:ip:{client_ip}", settings.rate_limit_register_per_ip, RATE_WINDOW_S)


async def register_generated(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, redis: Redis, *, client_ip: str
) -> GeneratedCredentials:
    """A new user with a generated name and password (LndHub ``/create``): the same rate limit,
    bcrypt and user + ledger account insert as :func:`register`. The password is returned once and
    only its hash is kept."""
    await _count_registration(redis, settings, client_ip)
    for _ in range(3):  # 80 random bits per name: a collision is all but impossible; never loop forever
        username = secrets.token_hex(GENERATED_LOGIN_BYTES)
        password = secrets.token_hex(GENERATED_PASSWORD_BYTES)
        try:
            await create_user(sessions, settings, username=username, password=password)
        except UsernameTaken:
            continue
        return GeneratedCredentials(username=username, password=password)
    raise ServiceUnavailable("Could not generate an unused login, try again")


async def login(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    redis: Redis,
    *,
    username: str,
    password: str,
    client_ip: str,
    access_ttl_s: int | None = None,
) -> TokenPair:
    """Check the credentials and open a new session (token family); InvalidCredentials otherwise.
    ``access_ttl_s`` overrides ACCESS_TOKEN_TTL (LndHub clients get LNDHUB_ACCESS_TOKEN_TTL)."""
    await ratelimit.hit(redis, f"login:ip:{client_ip}", settings.rate_limit_login_per_ip, RATE_WINDOW_S)
    await ratelimit.hit(
        redis, f"login:user:{username.lower()}", settings.rate_limit_login_per_username, RATE_WINDOW_S
    )
    async with sessions() as session:
        user = await queries.get_user_by_username(session, username)
    if user is None:
        await passwords.burn_verify(password, settings.bcrypt_cost)
        raise InvalidCredentials()
    if not await passwords.verify_password(password, user.password_hash) or not user.is_active:
        raise InvalidCredentials()
    async with sessions() as session, session.begin():
        # Re-checked under the row lock: a deactivation committed meanwhile wins (see services.users).
        locked = await queries.get_user(session, user.id, for_update=True)
        if locked is None or not locked.is_active:
            raise InvalidCredentials()
        user = await queries.mark_logged_in(session, user.id)
        return await _pair(session, settings, user, access_ttl_s=access_ttl_s)


async def refresh(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    refresh_token: str,
    access_ttl_s: int | None = None,
) -> TokenPair:
    """Spend ``refresh_token`` and return a new pair in the same family.

    Unknown → Unauthorized; expired → TokenExpired; spent or revoked → the family is revoked (and
    that revocation committed) → Unauthorized; deactivated user → Unauthorized."""
    async with sessions() as session:
        known = await refresh_tokens.lookup(session, refresh_token)
    if known is None:
        raise Unauthorized("Invalid refresh token")
    async with sessions() as session:
        user = await queries.get_user(session, known.user_id, for_update=True)
        try:
            spent = await refresh_tokens.spend(session, refresh_token)
        except refresh_tokens.TokenReused:
            await session.commit()  # the family revocation must outlive the 401
            raise
        if user is None or not user.is_active:
            raise Unauthorized("This account is not active")
        pair = await _pair(session, settings, user, family_id=spent.family_id, access_ttl_s=access_ttl_s)
        await session.commit()
        return pair


async def logout(
    sessions: async_sessionmaker[AsyncSession], *, user_id: uuid.UUID, refresh_token: str
) -> None:
    """Revoke the session (token family) of ``refresh_token``, which must belong to the caller."""
    async with sessions() as session, session.begin():
        await queries.get_user(session, user_id, for_update=True)
        await refresh_tokens.revoke_family_of(session, refresh_token, user_id=user_id)
