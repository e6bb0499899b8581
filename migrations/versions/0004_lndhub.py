"""lndhub: invoices.description_hash for LNURL-pay (Lightning Address) invoices

An invoice made for an LNURL-pay callback commits to sha256 of the service's metadata string: LND
puts that hash in the payment request (BOLT11 ``h``) instead of the memo, and the worker must pass it
on every (re)try of the create job, so it lives on the row.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("description_hash", sa.LargeBinary(), nullable=True))
    op.create_check_constraint(
        "invoices_description_hash_length",
        "invoices",
        "description_hash IS NULL OR octet_length(description_hash) = 32",
    )


def downgrade() -> None:
    op.drop_constraint("invoices_description_hash_length", "invoices", type_="check")
    op.drop_column("invoices", "description_hash")
