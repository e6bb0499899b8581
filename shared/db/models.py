"""SQLAlchemy 2 models: the schema both services share.

Money invariants live in the database, not only in Python (see migrations/versions/0001 and 0002):
- every ledger transaction balances to zero (a deferred constraint trigger);
- ledger entries are append-only (a trigger refuses UPDATE and DELETE);
- an account's balance is maintained from its entries by a trigger, and the available balance
  (balance - held) of a user account or of the treasury can never go below zero (a CHECK constraint);
- at most one outgoing payment per payment hash that has not failed (a partial unique index);
- an invoice is credited at most once and a payment debited at most once (partial unique indexes on
  ledger_entries by entry kind), whatever the application code does.
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
ACCOUNT_KINDS = ("user", "treasury", "fees", "external", "equity")
GUARDED_ACCOUNT_KINDS = ("user", "treasury")  # available balance >= 0, enforced by a CHECK
ADJUSTMENT_KINDS = ("credit", "debit", "deposit")
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
            f"NOT ({_in('kind', GUARDED_ACCOUNT_KINDS)}) OR balance_msat - held_msat >= 0",
            name="accounts_available_non_negative",
        ),
        Index("accounts_system_kind_key", "kind", unique=True, postgresql_where=text("kind <> 'user'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), unique=True)
    balance_msat: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    held_msat: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created_at()


# Entry kinds that credit an invoice's account and debit a payment's account: the backstop indexes
# below allow one such leg per invoice and per payment.
INVOICE_CREDIT_KINDS = ("invoice_settled", "internal_payment")
PAYMENT_DEBIT_KINDS = ("payment", "internal_payment")


class LedgerEntry(Base):
    """One leg of a balanced ledger transaction (all legs with one txn_id sum to zero)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount_msat <> 0", name="ledger_entries_amount_non_zero"),
        Index("ledger_entries_txn_idx", "txn_id"),
        Index("ledger_entries_account_idx", "account_id", "id"),
        Index("ledger_entries_invoice_idx", "invoice_id", postgresql_where=text("invoice_id IS NOT NULL")),
        Index("ledger_entries_payment_idx", "payment_id", postgresql_where=text("payment_id IS NOT NULL")),
        Index(
            "ledger_entries_adjustment_idx",
            "adjustment_id",
            postgresql_where=text("adjustment_id IS NOT NULL"),
        ),
        Index(
            "ledger_entries_invoice_credited_once",
            "invoice_id",
            unique=True,
            postgresql_where=text(
                f"invoice_id IS NOT NULL AND amount_msat > 0 AND {_in('kind', INVOICE_CREDIT_KINDS)}"
            ),
        ),
        Index(
            "ledger_entries_payment_debited_once",
            "payment_id",
            unique=True,
            postgresql_where=text(
                f"payment_id IS NOT NULL AND amount_msat < 0 AND {_in('kind', PAYMENT_DEBIT_KINDS)}"
            ),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    txn_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    amount_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invoices.id"))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id"))
    adjustment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("adjustments.id"))
    created_at: Mapped[datetime] = _created_at()


class Adjustment(Base):
    """An operator's movement of value, audited: a treasury ``deposit`` (equity -> treasury: the
    operator's own funds already on the node), or a ``credit`` (treasury -> user) / ``debit``
    (user -> treasury) of a user's balance. Always with a reason; its ledger legs carry its id."""

    __tablename__ = "adjustments"
    __table_args__ = (
        CheckConstraint(_in("kind", ADJUSTMENT_KINDS), name="adjustments_kind_valid"),
        CheckConstraint("amount_msat > 0", name="adjustments_amount_positive"),
        CheckConstraint("(kind = 'deposit') = (user_id IS NULL)", name="adjustments_user_iff_not_deposit"),
        CheckConstraint("length(reason) BETWEEN 1 AND 500", name="adjustments_reason_length"),
        Index("adjustments_created_idx", "created_at"),
        Index("adjustments_user_created_idx", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    amount_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))  # None: the system
    txn_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    created_at: Mapped[datetime] = _created_at()


class Anomaly(Base):
    """Something the money core did not expect and will not silently drop: a success reported for a
    failed payment, a settlement no invoice row can take, a balance that disagrees with its entries.

    ``fingerprint`` identifies the thing observed (kind + subject), so the same observation seen again
    (a replayed stream, the next reconcile pass) counts ``occurrences`` instead of adding rows."""

    __tablename__ = "anomalies"
    __table_args__ = (
        CheckConstraint(
            "(resolved_at IS NULL) = (resolution IS NULL)", name="anomalies_resolution_with_resolved_at"
        ),
        Index("anomalies_created_idx", "first_seen_at"),
        Index("anomalies_open_idx", "last_seen_at", postgresql_where=text("resolved_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    fingerprint: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id"))
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invoices.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    payment_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    details: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    occurrences: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    first_seen_at: Mapped[datetime] = _created_at()
    last_seen_at: Mapped[datetime] = _created_at()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    resolution: Mapped[str | None] = mapped_column(Text)  # the operator's explanation


class ReconciliationRun(Base):
    """One comparison of the ledger with the node (lightning_worker/reconciliation.py)."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        CheckConstraint("status IN ('ok', 'mismatch')", name="reconciliation_runs_status_valid"),
        Index("reconciliation_runs_checked_idx", "checked_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    checked_at: Mapped[datetime] = _created_at()
    status: Mapped[str] = mapped_column(Text, nullable=False)
    liabilities_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    treasury_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    node_local_balance_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    surplus_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    window_s: Mapped[int] = mapped_column(Integer, nullable=False)
    mismatches: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)


class NodeIdentity(Base):
    """The LND node this database belongs to (one row), written on the worker's first start."""

    __tablename__ = "node_identity"
    __table_args__ = (CheckConstraint("id = 1", name="node_identity_single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="1")
    identity_pubkey: Mapped[str] = mapped_column(Text, nullable=False)
    network: Mapped[str] = mapped_column(Text, nullable=False)
    recorded_at: Mapped[datetime] = _created_at()


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
        CheckConstraint(
            "description_hash IS NULL OR octet_length(description_hash) = 32",
            name="invoices_description_hash_length",
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
    # The account its settlement credits: the user's own, or the treasury for an admin's
    # ``forTreasury`` invoice.
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), nullable=False)
    for_treasury: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    state: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    amount_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    memo: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    expiry_s: Mapped[int] = mapped_column(Integer, nullable=False)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    payment_request: Mapped[str | None] = mapped_column(Text)
    payment_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    # sha256 of an LNURL-pay metadata string: the payment request carries it (BOLT11 h) instead of memo.
    description_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
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
    # Written before this row's first SendPaymentV2: tracking then tells this row's own attempt from
    # an earlier row's FAILED attempt of the same hash (creation_time_ns of that one, if any).
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    superseded_attempt_ns: Mapped[int | None] = mapped_column(BigInteger)
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
