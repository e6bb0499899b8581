"""The money invariants hold in the database itself, whatever SQL a bug might send."""

import asyncio
import uuid

import asyncpg
from sqlalchemy.exc import IntegrityError

from shared import ledger
from shared.errors import InsufficientBalance
from tests.support import env, factories
from tests.support.cases import DbCase


class LedgerInvariantsTest(DbCase):
    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(env.asyncpg_dsn(self.settings.database_url))

    async def account_of(self, user_id: uuid.UUID) -> int:
        async with self.sessions() as session:
            return await ledger.user_account_id(session, user_id)

    async def test_database_refuses_an_overdraft(self):
        user_id = await factories.create_user(self.sessions, balance_sat=100)
        account_id = await self.account_of(user_id)
        connection = await self.connect()
        try:
            txn = uuid.uuid4()
            with self.assertRaises(asyncpg.CheckViolationError) as ctx:
                async with connection.transaction():
                    await connection.execute(
                        "INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind) VALUES"
                        " ($1, $2, -100001, 'raw'), ($1, 3, 100001, 'raw')",
                        txn,
                        account_id,
                    )
            self.assertIn("accounts_available_non_negative", str(ctx.exception))
            balance = await connection.fetchval("SELECT balance_msat FROM accounts WHERE id = $1", account_id)
            self.assertEqual(balance, 100_000)
        finally:
            await connection.close()

    async def test_database_refuses_a_hold_beyond_the_available_balance(self):
        user_id = await factories.create_user(self.sessions, balance_sat=10)
        account_id = await self.account_of(user_id)
        connection = await self.connect()
        try:
            with self.assertRaises(asyncpg.CheckViolationError):
                await connection.execute("UPDATE accounts SET held_msat = 10001 WHERE id = $1", account_id)
            await connection.execute("UPDATE accounts SET held_msat = 4000 WHERE id = $1", account_id)
            # With 4 sat held, spending 7 sat would leave available at -1 sat.
            with self.assertRaises(asyncpg.CheckViolationError):
                async with connection.transaction():
                    await connection.execute(
                        "INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind) VALUES"
                        " ($1, $2, -7000, 'raw'), ($1, 3, 7000, 'raw')",
                        uuid.uuid4(),
                        account_id,
                    )
        finally:
            await connection.close()

    async def test_database_refuses_a_second_release_of_one_hold(self):
        # With 100 sat and 30 sat held, releasing the hold twice leaves held at -30 sat, which the
        # available check alone would allow (available would be 130 sat): only held >= 0 refuses it.
        user_id = await factories.create_user(self.sessions, balance_sat=100)
        account_id = await self.account_of(user_id)
        async with self.sessions() as session, session.begin():
            await ledger.place_hold(session, account_id, 30_000)
        release = "UPDATE accounts SET held_msat = held_msat - $2 WHERE id = $1"
        connection = await self.connect()
        try:
            await connection.execute(release, account_id, 30_000)
            with self.assertRaises(asyncpg.CheckViolationError) as ctx:
                await connection.execute(release, account_id, 30_000)
            self.assertIn("accounts_held_non_negative", str(ctx.exception))
            row = await connection.fetchrow(
                "SELECT balance_msat, held_msat FROM accounts WHERE id = $1", account_id
            )
            self.assertEqual(tuple(row), (100_000, 0))
        finally:
            await connection.close()
        with self.assertRaises(IntegrityError):  # the helper is refused the same way
            async with self.sessions() as session, session.begin():
                await ledger.release_hold(session, account_id, 1)

    async def test_unbalanced_transaction_is_refused_at_commit(self):
        user_id = await factories.create_user(self.sessions, balance_sat=5)
        account_id = await self.account_of(user_id)
        connection = await self.connect()
        try:
            with self.assertRaises(asyncpg.CheckViolationError) as ctx:
                async with connection.transaction():
                    await connection.execute(
                        "INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind)"
                        " VALUES ($1, $2, 1000, 'raw')",
                        uuid.uuid4(),
                        account_id,
                    )
            self.assertIn("does not balance", str(ctx.exception))
        finally:
            await connection.close()

    async def test_entries_are_append_only(self):
        await factories.create_user(self.sessions, balance_sat=5)
        connection = await self.connect()
        try:
            with self.assertRaises(asyncpg.RestrictViolationError):
                await connection.execute("UPDATE ledger_entries SET amount_msat = amount_msat * 2")
            with self.assertRaises(asyncpg.RestrictViolationError):
                await connection.execute("DELETE FROM ledger_entries")
        finally:
            await connection.close()

    async def test_one_active_payment_per_hash(self):
        user_id = await factories.create_user(self.sessions, balance_sat=5)
        account_id = await self.account_of(user_id)
        connection = await self.connect()
        insert = (
            "INSERT INTO payments (user_id, account_id, state, payment_hash, payment_request, destination,"
            " amount_msat, fee_limit_msat, hold_msat)"
            " VALUES ($1, $2, $3, $4, 'lnbcrt1', '02ab', 1000, 0, 1000)"
        )
        payment_hash = bytes(32)
        try:
            await connection.execute(insert, user_id, account_id, "failed", payment_hash)
            await connection.execute(insert, user_id, account_id, "pending", payment_hash)
            with self.assertRaises(asyncpg.UniqueViolationError):
                await connection.execute(insert, user_id, account_id, "in_flight", payment_hash)
        finally:
            await connection.close()

    async def test_ledger_helpers_refuse_overdraft_and_concurrent_holds_never_overdraw(self):
        user_id = await factories.create_user(self.sessions, balance_sat=100)
        account_id = await self.account_of(user_id)

        async def hold(amount_msat: int) -> bool:
            async with self.sessions() as session, session.begin():
                try:
                    await ledger.place_hold(session, account_id, amount_msat)
                except InsufficientBalance:
                    return False
            return True

        results = await asyncio.gather(*(hold(30_000) for _ in range(10)))
        self.assertEqual(sum(results), 3)
        async with self.sessions() as session:
            balance = await ledger.get_balance(session, account_id)
            self.assertEqual((balance.balance_msat, balance.held_msat), (100_000, 90_000))
            entries, balances = await ledger.ledger_totals(session)
        self.assertEqual((entries, balances), (0, 0))
        with self.assertRaises(InsufficientBalance):
            async with self.sessions() as session, session.begin():
                external = await ledger.system_account_id(session, "external")
                await ledger.post_transaction(
                    session, [ledger.Leg(account_id, -20_000), ledger.Leg(external, 20_000)], kind="spend"
                )

    def test_fee_reserve_is_whole_sats_and_at_least_the_minimum(self):
        self.assertEqual(ledger.fee_reserve_msat(1_000_000, ppm=10_000, min_sat=10), 10_000)
        self.assertEqual(ledger.fee_reserve_msat(100_000_000, ppm=10_000, min_sat=10), 1_000_000)
        self.assertEqual(ledger.fee_reserve_msat(100_500_000, ppm=10_000, min_sat=0), 1_005_000)
        self.assertEqual(ledger.fee_reserve_msat(1_234_567, ppm=5_000, min_sat=0) % 1000, 0)
        self.assertEqual(ledger.fee_reserve_msat(1_000, ppm=0, min_sat=0), 0)


class LedgerBackstopsTest(LedgerInvariantsTest):
    """Credited once, debited once: unique indexes by entry kind, whatever the application does."""

    async def test_an_invoice_is_credited_at_most_once(self):
        user_id = await factories.create_user(self.sessions)
        account_id = await self.account_of(user_id)
        connection = await self.connect()
        try:
            invoice_id = await connection.fetchval(
                "INSERT INTO invoices (user_id, account_id, amount_msat, expiry_s) VALUES ($1, $2, 1000, 60)"
                " RETURNING id",
                user_id,
                account_id,
            )
            credit = (
                "INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind, invoice_id) VALUES"
                " ($1, $2, 1000, $4, $3), ($1, 3, -1000, $4, $3)"
            )
            await connection.execute(credit, uuid.uuid4(), account_id, invoice_id, "invoice_settled")
            for kind in ("invoice_settled", "internal_payment"):
                with self.subTest(kind=kind), self.assertRaises(asyncpg.UniqueViolationError) as raised:
                    async with connection.transaction():
                        await connection.execute(credit, uuid.uuid4(), account_id, invoice_id, kind)
                self.assertIn("ledger_entries_invoice_credited_once", str(raised.exception))
            balance = await connection.fetchval("SELECT balance_msat FROM accounts WHERE id = $1", account_id)
            self.assertEqual(balance, 1000)
        finally:
            await connection.close()

    async def test_a_payment_is_debited_at_most_once(self):
        user_id = await factories.create_user(self.sessions, balance_sat=10)
        account_id = await self.account_of(user_id)
        connection = await self.connect()
        try:
            payment_id = await connection.fetchval(
                "INSERT INTO payments (user_id, account_id, state, payment_hash, payment_request,"
                " destination, amount_msat, fee_limit_msat, hold_msat)"
                " VALUES ($1, $2, 'in_flight', $3, 'lnbcrt1', '02ab', 1000, 0, 1000) RETURNING id",
                user_id,
                account_id,
                bytes(32),
            )
            debit = (
                "INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind, payment_id) VALUES"
                " ($1, $2, -1000, 'payment', $3), ($1, 3, 1000, 'payment', $3)"
            )
            await connection.execute(debit, uuid.uuid4(), account_id, payment_id)
            with self.assertRaises(asyncpg.UniqueViolationError) as raised:
                async with connection.transaction():
                    await connection.execute(debit, uuid.uuid4(), account_id, payment_id)
            self.assertIn("ledger_entries_payment_debited_once", str(raised.exception))
        finally:
            await connection.close()

    async def test_the_treasury_is_guarded_like_a_user(self):
        connection = await self.connect()
        try:
            treasury = await connection.fetchval("SELECT id FROM accounts WHERE kind = 'treasury'")
            with self.assertRaises(asyncpg.CheckViolationError):
                async with connection.transaction():
                    await connection.execute(
                        "INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind) VALUES"
                        " ($1, $2, -1, 'raw'), ($1, 3, 1, 'raw')",
                        uuid.uuid4(),
                        treasury,
                    )
            # Equity is the operator's side of deposits: it may go below zero, the treasury then holds it.
            await connection.execute(
                "INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind) VALUES"
                " ($1, $2, 5, 'raw'), ($1, (SELECT id FROM accounts WHERE kind = 'equity'), -5, 'raw')",
                uuid.uuid4(),
                treasury,
            )
        finally:
            await connection.close()
