"""Factories for test data: users (with their ledger account), their tokens, webhook deliveries."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.services.tokens import issue_access_token
from shared import ledger
from shared.config import Settings
from shared.db.models import User, WebhookDelivery

DEFAULT_PASSWORD = "correct horse battery"
_counter = itertools.count(1)
_HASH_CACHE: dict[str, str] = {}


def _hash(password: str) -> str:
    if password not in _HASH_CACHE:
        _HASH_CACHE[password] = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return _HASH_CACHE[password]


async def create_user(
    sessions: async_sessionmaker[AsyncSession],
    *,
    username: str | None = None,
    password: str = DEFAULT_PASSWORD,
    role: str = "user",
    is_active: bool = True,
    balance_sat: int = 0,
) -> uuid.UUID:
    """A user with its ledger account; ``balance_sat`` arrives from ``external`` (as if paid in)."""
    username = username or f"user{next(_counter)}_{uuid.uuid4().hex[:6]}"
    async with sessions() as session, session.begin():
        user_id = await session.scalar(
            insert(User)
            .values(username=username, password_hash=_hash(password), role=role, is_active=is_active)
            .returning(User.id)
        )
        account_id = await ledger.create_user_account(session, user_id)
        if balance_sat:
            await fund_account(session, account_id, balance_sat)
    return user_id


async def fund_account(session: AsyncSession, account_id: int, amount_sat: int) -> None:
    """Value entering an account from outside (as an invoice settlement would bring it)."""
    external = await ledger.system_account_id(session, "external")
    amount_msat = amount_sat * ledger.MSAT_PER_SAT
    await ledger.post_transaction(
        session,
        [ledger.Leg(external, -amount_msat), ledger.Leg(account_id, amount_msat)],
        kind="test_funding",
    )


async def fund_treasury(session: AsyncSession, amount_sat: int) -> None:
    """An operator deposit into the treasury (equity -> treasury), as the admin API records it."""
    treasury = await ledger.system_account_id(session, "treasury")
    equity = await ledger.system_account_id(session, "equity")
    amount_msat = amount_sat * ledger.MSAT_PER_SAT
    await ledger.post_transaction(
        session,
        [ledger.Leg(equity, -amount_msat), ledger.Leg(treasury, amount_msat)],
        kind="test_funding",
    )


def auth_headers(settings: Settings, user_id: uuid.UUID, role: str = "user") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_access_token(settings, user_id=user_id, role=role)}"}


async def insert_webhook_delivery(
    sessions: async_sessionmaker[AsyncSession],
    user_id: uuid.UUID,
    invoice_id: uuid.UUID,
    *,
    state: str = "failed",
    url: str = "https://shop.example/hook",
    created_at: datetime | None = None,
    last_attempt_at: datetime | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    """An ``invoice.settled`` delivery as the worker leaves one: ``failed`` has run out of its 8
    attempts (the last answered HTTP 500); ``pending`` is due an hour after ``created_at``."""
    created = created_at or datetime.now(UTC)
    failed = state == "failed"
    async with sessions() as session, session.begin():
        return await session.scalar(
            insert(WebhookDelivery)
            .values(
                user_id=user_id,
                invoice_id=invoice_id,
                event="invoice.settled",
                url=url,
                payload=payload or {"type": "invoice.settled"},
                state=state,
                attempts=8 if failed else 0,
                attempts_in_round=8 if failed else 0,
                last_status_code=500 if failed else None,
                last_error="HTTP 500" if failed else None,
                last_attempt_at=last_attempt_at,
                created_at=created,
                next_attempt_at=created + timedelta(hours=1),
            )
            .returning(WebhookDelivery.id)
        )
