"""Migration 0003 on a database with deliveries written before it: they keep working, both ways."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from tests.support import env
from tests.support.cases import AsyncCase


class WebhookMigrationTest(AsyncCase):
    async def asyncSetUp(self) -> None:
        test_url = env.database_url()
        self.url = env.with_database(test_url, env.database_name(test_url) + "_webhook_migration")
        await env.create_database_if_missing(self.url)
        await asyncio.to_thread(env.run_alembic, self.url, ("downgrade", "base"))

    async def fetchrow(self, sql: str, *args):
        connection = await asyncpg.connect(env.asyncpg_dsn(self.url))
        try:
            return await connection.fetchrow(sql, *args)
        finally:
            await connection.close()

    async def test_old_deliveries_get_an_owner_an_id_and_the_new_body_and_back(self):
        await asyncio.to_thread(env.run_alembic, self.url, ("upgrade", "0001"))
        # As the services leave it: a user with its account (0001 made the system accounts).
        user = await self.fetchrow(
            "INSERT INTO users (username, password_hash) VALUES ('m', 'x') RETURNING id"
        )
        await self.fetchrow("INSERT INTO accounts (kind, user_id) VALUES ('user', $1)", user["id"])
        invoice = await self.fetchrow(
            "INSERT INTO invoices (user_id, amount_msat, expiry_s, state, payment_hash, settled_at)"
            " VALUES ($1, 21000, 60, 'settled', '\\x01', now()) RETURNING id",
            user["id"],
        )
        old_body = {"event": "invoice.settled", "invoiceId": str(invoice["id"]), "amountSat": 21}
        await self.fetchrow(
            "INSERT INTO webhook_deliveries (invoice_id, event, url, payload, attempts)"
            " VALUES ($1, 'invoice.settled', 'https://shop.example/h', $2, 2) RETURNING id",
            invoice["id"],
            json.dumps(old_body),
        )
        await asyncio.to_thread(env.run_alembic, self.url, ("upgrade", "head"))
        row = await self.fetchrow("SELECT * FROM webhook_deliveries")
        payload = json.loads(row["payload"])
        self.assertEqual((row["user_id"], row["attempts_in_round"]), (user["id"], 2))
        self.assertTrue(row["webhook_id"].startswith("msg_"))
        self.assertEqual(payload["type"], "invoice.settled")
        self.assertEqual(payload["data"], {"invoiceId": str(invoice["id"]), "amountSat": 21})
        self.assertRegex(payload["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

        await asyncio.to_thread(env.run_alembic, self.url, ("downgrade", "0001"))
        row = await self.fetchrow("SELECT * FROM webhook_deliveries")
        self.assertEqual(json.loads(row["payload"]), old_body)
        await asyncio.to_thread(env.run_alembic, self.url, ("downgrade", "base"))
