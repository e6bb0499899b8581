"""Migrations on real Postgres: up, down to base, up again, and the models match the schema."""

import asyncio

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
    "webhook_secrets",
}


class MigrationsTest(AsyncCase):
    async def asyncSetUp(self) -> None:
        # Derived from the test database, so two checkouts testing at once never share it.
        test_url = env.database_url()
        self.url = env.with_database(test_url, env.database_name(test_url) + "_migrations")
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
