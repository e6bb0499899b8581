"""Migrations on real Postgres: up, down to base, up again, and the models match the schema."""

import asyncio
import uuid

import asyncpg

from tests.support import env
from tests.support.cases import AsyncCase

TABLES = {
    "users",
    "refresh_tokens",
    "accounts",
    "ledger_entries",
    "invoices",
    "payments",
    "idempotency_keys",
    "settlement_cursor",
    "webhook_deliveries",
    "adjustments",
    "anomalies",
    "node_identity",
    "reconciliation_runs",
    "webhook_secrets",
}


class MigrationsTest(AsyncCase):
    async def asyncSetUp(self) -> None:
        # Derived from the test database, so two checkouts testing at once never share it.
        test_url = env.database_url()
        self.url = env.with_database(test_url, env.database_name(test_url) + "_migrations")
        await env.drop_database(self.url)  # every test migrates a database of its own from nothing
        await env.create_database_if_missing(self.url)

    async def tables(self) -> set[str]:
        connection = await asyncpg.connect(env.asyncpg_dsn(self.url))
        try:
            rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        finally:
            await connection.close()
        return {row["tablename"] for row in rows} - {"alembic_version"}

    async def test_upgrade_downgrade_upgrade(self):
        await asyncio.to_thread(env.run_alembic, self.url, ("upgrade", "head"))
        self.assertEqual(await self.tables(), TABLES)
        await asyncio.to_thread(env.run_alembic, self.url, ("downgrade", "base"))
        self.assertEqual(await self.tables(), set())
        await asyncio.to_thread(env.run_alembic, self.url, ("upgrade", "head"))
        self.assertEqual(await self.tables(), TABLES)
        # The models and the migrations describe the same schema.
        await asyncio.to_thread(env.run_alembic, self.url, ("check", None))


class OpeningDepositMigrationTest(MigrationsTest):
    """A database whose treasury went below zero (treasury payments could do that before 0002) must
    upgrade: the migration records an opening deposit that brings it to zero, with its reason."""

    async def test_a_negative_treasury_gets_an_opening_deposit(self):
        await asyncio.to_thread(env.run_alembic, self.url, ("downgrade", "base"))
        await asyncio.to_thread(env.run_alembic, self.url, ("upgrade", "0001"))
        connection = await asyncpg.connect(env.asyncpg_dsn(self.url))
        try:
            async with connection.transaction():
                await connection.execute(
                    "INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind) VALUES"
                    " ($1, (SELECT id FROM accounts WHERE kind = 'treasury'), -7000, 'payment'),"
                    " ($1, (SELECT id FROM accounts WHERE kind = 'external'), 7000, 'payment')",
                    uuid.uuid4(),
                )
                await connection.execute("UPDATE accounts SET held_msat = 500 WHERE kind = 'treasury'")
        finally:
            await connection.close()
        await asyncio.to_thread(env.run_alembic, self.url, ("upgrade", "head"))
        connection = await asyncpg.connect(env.asyncpg_dsn(self.url))
        try:
            treasury = await connection.fetchrow(
                "SELECT balance_msat, held_msat FROM accounts WHERE kind = 'treasury'"
            )
            deposit = await connection.fetchrow(
                "SELECT kind, amount_msat, reason, created_by FROM adjustments"
            )
            equity = await connection.fetchval("SELECT balance_msat FROM accounts WHERE kind = 'equity'")
            totals = await connection.fetchval("SELECT sum(amount_msat) FROM ledger_entries")
        finally:
            await connection.close()
        self.assertEqual(treasury["balance_msat"] - treasury["held_msat"], 0)
        self.assertEqual(
            (deposit["kind"], deposit["amount_msat"], deposit["created_by"]), ("deposit", 7500, None)
        )
        self.assertIn("opening deposit", deposit["reason"])
        self.assertEqual((equity, totals), (-7500, 0))
        # Entries are append-only: once deposits exist, 0002 cannot be undone, and says so.
        with self.assertRaisesRegex(Exception, "treasury deposits were recorded"):
            await asyncio.to_thread(env.run_alembic, self.url, ("downgrade", "base"))
