"""SQLAlchemy 2 models: the schema both services share.

Money invariants live in the database, not only in Python (see migrations/versions/0001_initial.py):
- every ledger transaction balances to zero (a deferred constraint trigger);
- ledger entries are append-only (a trigger refuses UPDATE and DELETE);
- an account's balance is maintained from its entries by a trigger, and a user account's
  available balance (balance - held) can never go below zero (a CHECK constraint);
- at most one outgoing payment per payment hash that has not failed (a partial unique index).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

USER_ROLES = ("user", "admin")
ACCOUNT_KINDS = ("user", "treasury", "fees", "external")
INVOICE_STATES = ("pending", "open", "settled", "expired", "canceled", "failed")
PAYMENT_STATES = ("pending", "in_flight", "succeeded", "failed")
WEBHOOK_STATES = ("pending", "delivered", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    pass


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", USER_ROLES), name="users_role_valid"),
        Index("users_username_lower_key", func.lower(text("username")), unique=True),
        Index("users_created_at_idx", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    username: Mapped[str] = mapped_column(Text, nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False, server_default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("refresh_tokens_user_idx", "user_id"),
        Index("refresh_tokens_family_idx", "family_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Account(Base):
    """A ledger account. balance_msat is maintained by a trigger from ledger_entries."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(_in("kind", ACCOUNT_KINDS), name="accounts_kind_valid"),
        CheckConstraint("(kind = 'user') = (user_id IS NOT NULL)", name="accounts_user_iff_user_kind"),
        CheckConstraint("held_msat >= 0", name="accounts_held_non_negative"),
        CheckConstraint(
            "kind <> 'user' OR balance_msat - held_msat >= 0", name="accounts_available_non_negative"
        ),
        Index("accounts_system_kind_key", "kind", unique=True, postgresql_where=text("kind <> 'user'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), unique=True)
    balance_msat: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    held_msat: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created_at()


class LedgerEntry(Base):
    """One leg of a balanced ledger transaction (all legs with one txn_id sum to zero)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount_msat <> 0", name="ledger_entries_amount_non_zero"),
        Index("ledger_entries_txn_idx", "txn_id"),
        Index("ledger_entries_account_idx", "account_id", "id"),
        Index("ledger_entries_invoice_idx", "invoice_id", postgresql_where=text("invoice_id IS NOT NULL")),
        Index("ledger_entries_payment_idx", "payment_id", postgresql_where=text("payment_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    txn_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    amount_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invoices.id"))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id"))
    created_at: Mapped[datetime] = _created_at()


class Invoice(Base):
    """An incoming invoice. Written as `pending` before the worker asks LND for it."""

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(_in("state", INVOICE_STATES), name="invoices_state_valid"),
        CheckConstraint("amount_msat > 0", name="invoices_amount_positive"),
        CheckConstraint(
            "state = 'pending' OR state = 'failed' OR payment_hash IS NOT NULL",
            name="invoices_hash_once_created",
        ),
        Index("invoices_user_created_idx", "user_id", "created_at"),
        Index("invoices_payment_hash_key", "payment_hash", unique=True),
        Index(
            "invoices_state_idx", "state", "created_at", postgresql_where=text("state IN ('pending', 'open')")
        ),
        Index("invoices_created_idx", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    state: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    amount_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    memo: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    expiry_s: Mapped[int] = mapped_column(Integer, nullable=False)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    payment_request: Mapped[str | None] = mapped_column(Text)
    payment_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    add_index: Mapped[int | None] = mapped_column(BigInteger)
    settle_index: Mapped[int | None] = mapped_column(BigInteger)
    amount_paid_msat: Mapped[int | None] = mapped_column(BigInteger)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Payment(Base):
    """An outgoing payment. Its hold (amount + fee reserve) sits in the payer account's held_msat."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(_in("state", PAYMENT_STATES), name="payments_state_valid"),
        CheckConstraint("amount_msat > 0", name="payments_amount_positive"),
        CheckConstraint("fee_limit_msat >= 0", name="payments_fee_limit_non_negative"),
        CheckConstraint(
            "fee_msat IS NULL OR (fee_msat >= 0 AND fee_msat <= fee_limit_msat)",
            name="payments_fee_within_limit",
        ),
        CheckConstraint(
            "state <> 'succeeded' OR preimage IS NOT NULL", name="payments_succeeded_has_preimage"
        ),
        Index(
            "payments_payment_hash_active_key",
            "payment_hash",
            unique=True,
            postgresql_where=text("state <> 'failed'"),
        ),
        Index("payments_payment_hash_idx", "payment_hash"),
        Index("payments_user_created_idx", "user_id", "created_at"),
        Index(
            "payments_state_idx",
            "state",
            "updated_at",
            postgresql_where=text("state IN ('pending', 'in_flight')"),
        ),
        Index("payments_created_idx", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    from_treasury: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    internal: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    state: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    payment_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    payment_request: Mapped[str] = mapped_column(Text, nullable=False)
    destination: Mapped[str] = mapped_column(Text, nullable=False)
    memo: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    amount_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_limit_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    hold_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_msat: Mapped[int | None] = mapped_column(BigInteger)
    preimage: Mapped[bytes | None] = mapped_column(LargeBinary)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    internal_invoice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invoices.id"))
    webhook_url: Mapped[str | None] = mapped_column(Text)  # migration 0003 (webhooks)
    attempts: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("idempotency_keys_created_idx", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    endpoint: Mapped[str] = mapped_column(Text, nullable=False)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    resource_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created_at()


class SettlementCursor(Base):
    """The highest settle_index (and add_index) of the node that has been fully processed."""

    __tablename__ = "settlement_cursor"

    node: Mapped[str] = mapped_column(Text, primary_key=True)
    settle_index: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    add_index: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = _created_at()


class WebhookDelivery(Base):
    """Outbox of webhook calls, written in the same transaction as the event they announce
    (migrations 0001 and 0003). ``webhook_id`` is the Standard Webhooks message id, the same on every
    attempt and redelivery. ``next_attempt_at`` is the schedule (and, while an attempt runs, its
    lease); ``attempts_in_round`` counts attempts since the event or the last redelivery request."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("state", WEBHOOK_STATES), name="webhook_deliveries_state_valid"),
        CheckConstraint(
            "(invoice_id IS NULL) <> (payment_id IS NULL)", name="webhook_deliveries_one_subject"
        ),
        Index("webhook_deliveries_event_key", "invoice_id", "event", unique=True),
        Index("webhook_deliveries_payment_event_key", "payment_id", "event", unique=True),
        Index("webhook_deliveries_due_idx", "next_attempt_at", postgresql_where=text("state = 'pending'")),
        Index("webhook_deliveries_user_created_idx", "user_id", "created_at"),
        Index("webhook_deliveries_state_created_idx", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(
        Text,
        nullable=False,
        unique=True,
        server_default=text("'msg_' || replace(CAST(gen_random_uuid() AS text), '-', '')"),
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invoices.id"))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id"))
    event: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[Any] = mapped_column(JSONB, nullable=False)
    state: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    attempts_in_round: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = _created_at()
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookSecret(Base):
    """A user's webhook signing secret, sealed (shared/webhook_secrets.py). One active row per user
    (``expires_at IS NULL``); a rotated-out row keeps signing until its ``expires_at``."""

    __tablename__ = "webhook_secrets"
    __table_args__ = (
        Index(
            "webhook_secrets_active_key", "user_id", unique=True, postgresql_where=text("expires_at IS NULL")
        ),
        Index("webhook_secrets_user_idx", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
