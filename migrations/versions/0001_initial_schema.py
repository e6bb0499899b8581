"""initial schema: users, tokens, ledger, invoices, payments, idempotency, cursor, webhooks

The ledger's money invariants are enforced here by triggers and constraints (see shared/db/models.py).

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 03:05:52.313553
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Each entry moves the account's balance; the CHECK on accounts then refuses any entry that would
# take a user's available balance below zero, whoever wrote the SQL.
_LEDGER_UP = [
    """
    CREATE FUNCTION ledger_apply_entry() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE accounts SET balance_msat = balance_msat + NEW.amount_msat WHERE id = NEW.account_id;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_apply_entry()
    """,
    # Entries are history: never changed, never removed.
    """
    CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger entries are append-only' USING ERRCODE = 'restrict_violation';
    END $$
    """,
    """
    CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
    """,
    # Checked at commit, once all legs of a transaction are written.
    """
    CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE total numeric;
    BEGIN
        SELECT sum(amount_msat) INTO total FROM ledger_entries WHERE txn_id = NEW.txn_id;
        IF total <> 0 THEN
            RAISE EXCEPTION 'ledger transaction % does not balance (sum %)', NEW.txn_id, total
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()
    """,
    "INSERT INTO accounts (kind) VALUES ('treasury'), ('fees'), ('external')",
]

_LEDGER_DOWN = [
    "DROP TRIGGER IF EXISTS ledger_entries_balanced ON ledger_entries",
    "DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries",
    "DROP TRIGGER IF EXISTS ledger_entries_apply ON ledger_entries",
    "DROP FUNCTION IF EXISTS ledger_check_balanced()",
    "DROP FUNCTION IF EXISTS ledger_refuse_change()",
    "DROP FUNCTION IF EXISTS ledger_apply_entry()",
]


def upgrade() -> None:
    op.create_table('settlement_cursor',
    sa.Column('node', sa.Text(), nullable=False),
    sa.Column('settle_index', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('add_index', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('node')
    )
    op.create_table('users',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('username', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('role', sa.Text(), server_default='user', nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('user', 'admin')", name='users_role_valid'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('users_created_at_idx', 'users', ['created_at'], unique=False)
    op.create_index('users_username_lower_key', 'users', [sa.literal_column('lower(username)')], unique=True)
    op.create_table('accounts',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=True),
    sa.Column('balance_msat', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('held_msat', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(kind = 'user') = (user_id IS NOT NULL)", name='accounts_user_iff_user_kind'),
    sa.CheckConstraint("kind <> 'user' OR balance_msat - held_msat >= 0", name='accounts_available_non_negative'),
    sa.CheckConstraint("kind IN ('user', 'treasury', 'fees', 'external')", name='accounts_kind_valid'),
    sa.CheckConstraint('held_msat >= 0', name='accounts_held_non_negative'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id')
    )
    op.create_index('accounts_system_kind_key', 'accounts', ['kind'], unique=True, postgresql_where=sa.text("kind <> 'user'"))
    op.create_table('idempotency_keys',
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('endpoint', sa.Text(), nullable=False),
    sa.Column('request_hash', sa.LargeBinary(), nullable=False),
    sa.Column('resource_id', sa.UUID(), nullable=True),
    sa.Column('response_status', sa.SmallInteger(), nullable=True),
    sa.Column('response_body', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('user_id', 'key')
    )
    op.create_index('idempotency_keys_created_idx', 'idempotency_keys', ['created_at'], unique=False)
    op.create_table('invoices',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('state', sa.Text(), server_default='pending', nullable=False),
    sa.Column('amount_msat', sa.BigInteger(), nullable=False),
    sa.Column('memo', sa.Text(), server_default='', nullable=False),
    sa.Column('expiry_s', sa.Integer(), nullable=False),
    sa.Column('webhook_url', sa.Text(), nullable=True),
    sa.Column('payment_request', sa.Text(), nullable=True),
    sa.Column('payment_hash', sa.LargeBinary(), nullable=True),
    sa.Column('add_index', sa.BigInteger(), nullable=True),
    sa.Column('settle_index', sa.BigInteger(), nullable=True),
    sa.Column('amount_paid_msat', sa.BigInteger(), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state = 'pending' OR state = 'failed' OR payment_hash IS NOT NULL", name='invoices_hash_once_created'),
    sa.CheckConstraint("state IN ('pending', 'open', 'settled', 'expired', 'canceled', 'failed')", name='invoices_state_valid'),
    sa.CheckConstraint('amount_msat > 0', name='invoices_amount_positive'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('invoices_created_idx', 'invoices', ['created_at'], unique=False)
    op.create_index('invoices_payment_hash_key', 'invoices', ['payment_hash'], unique=True)
    op.create_index('invoices_state_idx', 'invoices', ['state', 'created_at'], unique=False, postgresql_where=sa.text("state IN ('pending', 'open')"))
    op.create_index('invoices_user_created_idx', 'invoices', ['user_id', 'created_at'], unique=False)
    op.create_table('refresh_tokens',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('family_id', sa.UUID(), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('refresh_tokens_family_idx', 'refresh_tokens', ['family_id'], unique=False)
    op.create_index('refresh_tokens_user_idx', 'refresh_tokens', ['user_id'], unique=False)
    op.create_table('payments',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('from_treasury', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('internal', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('state', sa.Text(), server_default='pending', nullable=False),
    sa.Column('payment_hash', sa.LargeBinary(), nullable=False),
    sa.Column('payment_request', sa.Text(), nullable=False),
    sa.Column('destination', sa.Text(), nullable=False),
    sa.Column('memo', sa.Text(), server_default='', nullable=False),
    sa.Column('amount_msat', sa.BigInteger(), nullable=False),
    sa.Column('fee_limit_msat', sa.BigInteger(), nullable=False),
    sa.Column('hold_msat', sa.BigInteger(), nullable=False),
    sa.Column('fee_msat', sa.BigInteger(), nullable=True),
    sa.Column('preimage', sa.LargeBinary(), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('internal_invoice_id', sa.UUID(), nullable=True),
    sa.Column('attempts', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state <> 'succeeded' OR preimage IS NOT NULL", name='payments_succeeded_has_preimage'),
    sa.CheckConstraint("state IN ('pending', 'in_flight', 'succeeded', 'failed')", name='payments_state_valid'),
    sa.CheckConstraint('amount_msat > 0', name='payments_amount_positive'),
    sa.CheckConstraint('fee_limit_msat >= 0', name='payments_fee_limit_non_negative'),
    sa.CheckConstraint('fee_msat IS NULL OR (fee_msat >= 0 AND fee_msat <= fee_limit_msat)', name='payments_fee_within_limit'),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['internal_invoice_id'], ['invoices.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('payments_created_idx', 'payments', ['created_at'], unique=False)
    op.create_index('payments_payment_hash_active_key', 'payments', ['payment_hash'], unique=True, postgresql_where=sa.text("state <> 'failed'"))
    op.create_index('payments_payment_hash_idx', 'payments', ['payment_hash'], unique=False)
    op.create_index('payments_state_idx', 'payments', ['state', 'updated_at'], unique=False, postgresql_where=sa.text("state IN ('pending', 'in_flight')"))
    op.create_index('payments_user_created_idx', 'payments', ['user_id', 'created_at'], unique=False)
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('invoice_id', sa.UUID(), nullable=False),
    sa.Column('event', sa.Text(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('state', sa.Text(), server_default='pending', nullable=False),
    sa.Column('attempts', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')", name='webhook_deliveries_state_valid'),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('webhook_deliveries_due_idx', 'webhook_deliveries', ['next_attempt_at'], unique=False, postgresql_where=sa.text("state = 'pending'"))
    op.create_index('webhook_deliveries_event_key', 'webhook_deliveries', ['invoice_id', 'event'], unique=True)
    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('txn_id', sa.UUID(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('amount_msat', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('invoice_id', sa.UUID(), nullable=True),
    sa.Column('payment_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('amount_msat <> 0', name='ledger_entries_amount_non_zero'),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], ),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ledger_entries_account_idx', 'ledger_entries', ['account_id', 'id'], unique=False)
    op.create_index('ledger_entries_invoice_idx', 'ledger_entries', ['invoice_id'], unique=False, postgresql_where=sa.text('invoice_id IS NOT NULL'))
    op.create_index('ledger_entries_payment_idx', 'ledger_entries', ['payment_id'], unique=False, postgresql_where=sa.text('payment_id IS NOT NULL'))
    op.create_index('ledger_entries_txn_idx', 'ledger_entries', ['txn_id'], unique=False)

    for statement in _LEDGER_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _LEDGER_DOWN:
        op.execute(statement)
    op.drop_index('ledger_entries_txn_idx', table_name='ledger_entries')
    op.drop_index('ledger_entries_payment_idx', table_name='ledger_entries', postgresql_where=sa.text('payment_id IS NOT NULL'))
    op.drop_index('ledger_entries_invoice_idx', table_name='ledger_entries', postgresql_where=sa.text('invoice_id IS NOT NULL'))
    op.drop_index('ledger_entries_account_idx', table_name='ledger_entries')
    op.drop_table('ledger_entries')
    op.drop_index('webhook_deliveries_event_key', table_name='webhook_deliveries')
    op.drop_index('webhook_deliveries_due_idx', table_name='webhook_deliveries', postgresql_where=sa.text("state = 'pending'"))
    op.drop_table('webhook_deliveries')
    op.drop_index('payments_user_created_idx', table_name='payments')
    op.drop_index('payments_state_idx', table_name='payments', postgresql_where=sa.text("state IN ('pending', 'in_flight')"))
    op.drop_index('payments_payment_hash_idx', table_name='payments')
    op.drop_index('payments_payment_hash_active_key', table_name='payments', postgresql_where=sa.text("state <> 'failed'"))
    op.drop_index('payments_created_idx', table_name='payments')
    op.drop_table('payments')
    op.drop_index('refresh_tokens_user_idx', table_name='refresh_tokens')
    op.drop_index('refresh_tokens_family_idx', table_name='refresh_tokens')
    op.drop_table('refresh_tokens')
    op.drop_index('invoices_user_created_idx', table_name='invoices')
    op.drop_index('invoices_state_idx', table_name='invoices', postgresql_where=sa.text("state IN ('pending', 'open')"))
    op.drop_index('invoices_payment_hash_key', table_name='invoices')
    op.drop_index('invoices_created_idx', table_name='invoices')
    op.drop_table('invoices')
    op.drop_index('idempotency_keys_created_idx', table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_index('accounts_system_kind_key', table_name='accounts', postgresql_where=sa.text("kind <> 'user'"))
    op.drop_table('accounts')
    op.drop_index('users_username_lower_key', table_name='users')
    op.drop_index('users_created_at_idx', table_name='users')
    op.drop_table('users')
    op.drop_table('settlement_cursor')
