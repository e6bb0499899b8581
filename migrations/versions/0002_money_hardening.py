"""money-path hardening: a guarded treasury funded from equity, audited adjustments, invoice accounts,
the payment send marker, anomalies, node identity, credit-once / debit-once backstops

- The treasury becomes a guarded account like a user's (available >= 0, by CHECK). A database whose
  treasury is already below zero (treasury payments could do that before) gets an opening deposit
  (equity -> treasury) that brings it to zero, recorded in ``adjustments`` with its reason.
- ``invoices.account_id``: the account a settlement credits (the user's, or the treasury for a
  ``forTreasury`` invoice); backfilled from the owner's account.
- ``payments.sent_at`` / ``superseded_attempt_ns``: written before a row's first send, so a retry
  tells its own attempt from an earlier row's FAILED one (rows that already sent are backfilled).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPENING_DEPOSIT_REASON = "opening deposit: the treasury was below zero when migration 0002 guarded it"

_OPENING_DEPOSIT_SQL = f"""
WITH deficit AS (
    SELECT id AS treasury_id, held_msat - balance_msat AS amount_msat
      FROM accounts WHERE kind = 'treasury' AND balance_msat - held_msat < 0
),
adjustment AS (
    INSERT INTO adjustments (kind, amount_msat, reason, txn_id)
    SELECT 'deposit', amount_msat, '{OPENING_DEPOSIT_REASON}', gen_random_uuid() FROM deficit
    RETURNING id, amount_msat, txn_id
)
INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind, adjustment_id)
SELECT a.txn_id, x.account_id, x.amount_msat, 'treasury_deposit', a.id
  FROM adjustment a, deficit d
 CROSS JOIN LATERAL (VALUES (d.treasury_id, a.amount_msat),
                            ((SELECT id FROM accounts WHERE kind = 'equity'), -a.amount_msat))
       AS x(account_id, amount_msat)
"""


def upgrade() -> None:
    op.drop_constraint("accounts_kind_valid", "accounts", type_="check")
    op.create_check_constraint(
        "accounts_kind_valid", "accounts", "kind IN ('user', 'treasury', 'fees', 'external', 'equity')"
    )
    op.execute("INSERT INTO accounts (kind) VALUES ('equity')")

    op.create_table(
        "adjustments",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("amount_msat", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column("txn_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('credit', 'debit', 'deposit')", name="adjustments_kind_valid"),
        sa.CheckConstraint("amount_msat > 0", name="adjustments_amount_positive"),
        sa.CheckConstraint("(kind = 'deposit') = (user_id IS NULL)", name="adjustments_user_iff_not_deposit"),
        sa.CheckConstraint("length(reason) BETWEEN 1 AND 500", name="adjustments_reason_length"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("adjustments_created_idx", "adjustments", ["created_at"])
    op.create_index("adjustments_user_created_idx", "adjustments", ["user_id", "created_at"])
    op.add_column("ledger_entries", sa.Column("adjustment_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        "ledger_entries_adjustment_id_fkey", "ledger_entries", "adjustments", ["adjustment_id"], ["id"]
    )
    op.create_index(
        "ledger_entries_adjustment_idx",
        "ledger_entries",
        ["adjustment_id"],
        postgresql_where=sa.text("adjustment_id IS NOT NULL"),
    )

    # Bring a treasury that is below zero back to zero with an audited opening deposit, then guard it.
    op.execute(_OPENING_DEPOSIT_SQL)
    # Check the deposit's balance now: DDL on ledger_entries below cannot run with deferred trigger
    # events still pending in this transaction.
    op.execute("SET CONSTRAINTS ALL IMMEDIATE")
    op.drop_constraint("accounts_available_non_negative", "accounts", type_="check")
    op.create_check_constraint(
        "accounts_available_non_negative",
        "accounts",
        "NOT (kind IN ('user', 'treasury')) OR balance_msat - held_msat >= 0",
    )

    op.create_index(
        "ledger_entries_invoice_credited_once",
        "ledger_entries",
        ["invoice_id"],
        unique=True,
        postgresql_where=sa.text(
            "invoice_id IS NOT NULL AND amount_msat > 0 AND kind IN ('invoice_settled', 'internal_payment')"
        ),
    )
    op.create_index(
        "ledger_entries_payment_debited_once",
        "ledger_entries",
        ["payment_id"],
        unique=True,
        postgresql_where=sa.text(
            "payment_id IS NOT NULL AND amount_msat < 0 AND kind IN ('payment', 'internal_payment')"
        ),
    )

    op.add_column("invoices", sa.Column("account_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "invoices", sa.Column("for_treasury", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.execute("UPDATE invoices i SET account_id = a.id FROM accounts a WHERE a.user_id = i.user_id")
    op.alter_column("invoices", "account_id", nullable=False)
    op.create_foreign_key("invoices_account_id_fkey", "invoices", "accounts", ["account_id"], ["id"])

    op.add_column("payments", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("payments", sa.Column("superseded_attempt_ns", sa.BigInteger(), nullable=True))
    op.execute("UPDATE payments SET sent_at = updated_at WHERE attempts > 0 AND NOT internal")

    op.create_table(
        "anomalies",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("payment_id", sa.UUID(), nullable=True),
        sa.Column("invoice_id", sa.UUID(), nullable=True),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("payment_hash", sa.LargeBinary(), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("occurrences", sa.Integer(), server_default="1", nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"]),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_index("anomalies_created_idx", "anomalies", ["first_seen_at"])
    op.create_index(
        "anomalies_open_idx", "anomalies", ["last_seen_at"], postgresql_where=sa.text("resolved_at IS NULL")
    )

    op.create_table(
        "node_identity",
        sa.Column("id", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("identity_pubkey", sa.Text(), nullable=False),
        sa.Column("network", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("id = 1", name="node_identity_single_row"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("node_identity")
    op.drop_index("anomalies_open_idx", table_name="anomalies")
    op.drop_index("anomalies_created_idx", table_name="anomalies")
    op.drop_table("anomalies")
    op.drop_column("payments", "superseded_attempt_ns")
    op.drop_column("payments", "sent_at")
    op.drop_constraint("invoices_account_id_fkey", "invoices", type_="foreignkey")
    op.drop_column("invoices", "for_treasury")
    op.drop_column("invoices", "account_id")
    op.drop_index("ledger_entries_payment_debited_once", table_name="ledger_entries")
    op.drop_index("ledger_entries_invoice_credited_once", table_name="ledger_entries")
    op.drop_constraint("accounts_available_non_negative", "accounts", type_="check")
    op.create_check_constraint(
        "accounts_available_non_negative", "accounts", "kind <> 'user' OR balance_msat - held_msat >= 0"
    )
    op.drop_index("ledger_entries_adjustment_idx", table_name="ledger_entries")
    op.drop_constraint("ledger_entries_adjustment_id_fkey", "ledger_entries", type_="foreignkey")
    op.drop_column("ledger_entries", "adjustment_id")
    op.drop_table("adjustments")
    # The equity account can only go while nothing was ever posted to it (entries are append-only).
    op.execute(
        """
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM ledger_entries e JOIN accounts a ON a.id = e.account_id
                        WHERE a.kind = 'equity') THEN
                RAISE EXCEPTION 'cannot downgrade below 0002: treasury deposits were recorded';
            END IF;
        END $$
        """
    )
    op.execute("DELETE FROM accounts WHERE kind = 'equity'")
    op.drop_constraint("accounts_kind_valid", "accounts", type_="check")
    op.create_check_constraint(
        "accounts_kind_valid", "accounts", "kind IN ('user', 'treasury', 'fees', 'external')"
    )
