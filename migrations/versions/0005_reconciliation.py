"""reconciliation against the node: stored runs; anomalies carry who resolved them and why

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("liabilities_msat", sa.BigInteger(), nullable=False),
        sa.Column("treasury_msat", sa.BigInteger(), nullable=False),
        sa.Column("node_local_balance_msat", sa.BigInteger(), nullable=False),
        sa.Column("surplus_msat", sa.BigInteger(), nullable=False),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column(
            "mismatches",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.CheckConstraint("status IN ('ok', 'mismatch')", name="reconciliation_runs_status_valid"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("reconciliation_runs_checked_idx", "reconciliation_runs", ["checked_at"])
    op.add_column("anomalies", sa.Column("resolved_by", sa.UUID(), nullable=True))
    op.add_column("anomalies", sa.Column("resolution", sa.Text(), nullable=True))
    op.create_foreign_key("anomalies_resolved_by_fkey", "anomalies", "users", ["resolved_by"], ["id"])
    op.create_check_constraint(
        "anomalies_resolution_with_resolved_at",
        "anomalies",
        "(resolved_at IS NULL) = (resolution IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint("anomalies_resolution_with_resolved_at", "anomalies", type_="check")
    op.drop_constraint("anomalies_resolved_by_fkey", "anomalies", type_="foreignkey")
    op.drop_column("anomalies", "resolution")
    op.drop_column("anomalies", "resolved_by")
    op.drop_index("reconciliation_runs_checked_idx", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
