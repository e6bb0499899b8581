"""webhooks: payment events, Standard Webhooks ids and secrets, per-delivery attempt records

- webhook_deliveries: a delivery announces an invoice OR a payment (payment_id, CHECK one subject),
  belongs to a user (user_id, backfilled from its invoice), carries a stable message id
  (webhook_id), the attempts of its current round, the last status code and attempt time. Existing
  rows get the new body shape {"type", "timestamp", "data"} around their old fields.
- payments.webhook_url.
- webhook_secrets: sealed per-user signing secrets (one active per user).

Revision ID: 0003
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WEBHOOK_ID_DEFAULT = sa.text("'msg_' || replace(CAST(gen_random_uuid() AS text), '-', '')")


def upgrade() -> None:
    op.add_column("payments", sa.Column("webhook_url", sa.Text(), nullable=True))

    op.add_column(
        "webhook_deliveries",
        sa.Column("webhook_id", sa.Text(), server_default=_WEBHOOK_ID_DEFAULT, nullable=False),
    )
    op.add_column("webhook_deliveries", sa.Column("user_id", sa.UUID(), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("payment_id", sa.UUID(), nullable=True))
    op.add_column(
        "webhook_deliveries",
        sa.Column("attempts_in_round", sa.SmallInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "webhook_deliveries", sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("webhook_deliveries", sa.Column("last_status_code", sa.SmallInteger(), nullable=True))
    op.execute(
        """
        UPDATE webhook_deliveries d
           SET user_id = i.user_id,
               attempts_in_round = d.attempts,
               payload = jsonb_build_object(
                   'type', d.event,
                   'timestamp', to_char(coalesce(i.settled_at, d.created_at) AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   'data', d.payload - 'event')
          FROM invoices i
         WHERE i.id = d.invoice_id
        """
    )
    op.alter_column("webhook_deliveries", "user_id", nullable=False)
    op.alter_column("webhook_deliveries", "invoice_id", nullable=True)
    op.create_foreign_key(
        "webhook_deliveries_user_id_fkey", "webhook_deliveries", "users", ["user_id"], ["id"]
    )
    op.create_foreign_key(
        "webhook_deliveries_payment_id_fkey", "webhook_deliveries", "payments", ["payment_id"], ["id"]
    )
    op.create_unique_constraint("webhook_deliveries_webhook_id_key", "webhook_deliveries", ["webhook_id"])
    op.create_check_constraint(
        "webhook_deliveries_one_subject", "webhook_deliveries", "(invoice_id IS NULL) <> (payment_id IS NULL)"
    )
    op.create_index(
        "webhook_deliveries_payment_event_key", "webhook_deliveries", ["payment_id", "event"], unique=True
    )
    op.create_index(
        "webhook_deliveries_user_created_idx", "webhook_deliveries", ["user_id", "created_at"], unique=False
    )
    op.create_index(
        "webhook_deliveries_state_created_idx", "webhook_deliveries", ["state", "created_at"], unique=False
    )

    op.create_table(
        "webhook_secrets",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "webhook_secrets_active_key",
        "webhook_secrets",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("expires_at IS NULL"),
    )
    op.create_index("webhook_secrets_user_idx", "webhook_secrets", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("webhook_secrets_user_idx", table_name="webhook_secrets")
    op.drop_index(
        "webhook_secrets_active_key",
        table_name="webhook_secrets",
        postgresql_where=sa.text("expires_at IS NULL"),
    )
    op.drop_table("webhook_secrets")

    # Payment events have no place in the old table (invoice_id NOT NULL): they go.
    op.execute("DELETE FROM webhook_deliveries WHERE payment_id IS NOT NULL")
    op.execute(
        """
        UPDATE webhook_deliveries
           SET payload = (payload -> 'data') || jsonb_build_object('event', payload -> 'type')
         WHERE payload ? 'data'
        """
    )
    op.drop_index("webhook_deliveries_state_created_idx", table_name="webhook_deliveries")
    op.drop_index("webhook_deliveries_user_created_idx", table_name="webhook_deliveries")
    op.drop_index("webhook_deliveries_payment_event_key", table_name="webhook_deliveries")
    op.drop_constraint("webhook_deliveries_one_subject", "webhook_deliveries", type_="check")
    op.drop_constraint("webhook_deliveries_webhook_id_key", "webhook_deliveries", type_="unique")
    op.drop_constraint("webhook_deliveries_payment_id_fkey", "webhook_deliveries", type_="foreignkey")
    op.drop_constraint("webhook_deliveries_user_id_fkey", "webhook_deliveries", type_="foreignkey")
    op.alter_column("webhook_deliveries", "invoice_id", nullable=False)
    for column in (
        "last_status_code",
        "last_attempt_at",
        "attempts_in_round",
        "payment_id",
        "user_id",
        "webhook_id",
    ):
        op.drop_column("webhook_deliveries", column)

    op.drop_column("payments", "webhook_url")
