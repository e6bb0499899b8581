"""The worker's safety nets: settlements nobody can take become anomalies, the reconcile cron checks
every account and hold (and reports a planted breach), old Idempotency-Keys are purged, a silent
settlement stream is probed and reconnected, the sweep credits what the stream never said, the node's
identity is pinned, and jobs are JSON."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from unittest import mock

from sqlalchemy import text

from lightning_worker import crons, subscription
from lightning_worker.node_identity import NodeIdentityMismatch, verify_node_identity
from lightning_worker.settlement import settle_invoices
from lightning_worker.subscription import SettlementSubscription
from shared import anomalies, jobs
from shared.errors import LightningUnavailable
from shared.lightning.types import Invoice, InvoiceState, NodeInfo
from tests.support.cases import wait_for
from tests.support.fake_lightning import PUBKEY
from tests.worker.helpers import WorkerCase, ago


class SafetyCase(WorkerCase):
    async def anomaly_kinds(self) -> list[str]:
        async with self.sessions() as session:
            return list((await session.scalars(text("SELECT kind FROM anomalies ORDER BY id"))).all())

    @staticmethod
    async def true(value: bool) -> bool:
        return value


class UncreditableSettlementTests(SafetyCase):
    def node_settled(self, payment_hash: bytes, amount_msat: int = 5000) -> Invoice:
        return Invoice(
            payment_hash,
            "lnbcrt1x",
            "",
            amount_msat,
            amount_msat,
            InvoiceState.SETTLED,
            9,
            9,
            0,
            0,
            3600,
            None,
        )

    async def test_a_settlement_of_an_unknown_hash_is_recorded_not_skipped(self) -> None:
        result = await settle_invoices(self.context, [self.node_settled(os.urandom(32))], cursor_node=PUBKEY)
        self.assertEqual(result.credited, [])
        self.assertEqual(await self.anomaly_kinds(), [anomalies.SETTLEMENT_UNKNOWN_INVOICE])
        self.assertEqual(int(await self.scalar("SELECT settle_index FROM settlement_cursor")), 9)

    async def test_a_settlement_for_a_failed_or_canceled_row_is_recorded(self) -> None:
        user = await self.user()
        failed = await self.open_invoice(user, 5)
        canceled = await self.open_invoice(user, 6)
        await self.set_row("invoices", failed.id, state="failed")
        await self.set_row("invoices", canceled.id, state="canceled")
        batch = [self.fake.settle(failed.payment_hash), self.fake.settle(canceled.payment_hash)]
        result = await settle_invoices(self.context, batch, cursor_node=PUBKEY)
        self.assertEqual(result.credited, [])
        self.assertEqual((await self.balance(user)).balance_msat, 0)
        self.assertEqual(await self.anomaly_kinds(), [anomalies.SETTLEMENT_NOT_CREDITABLE] * 2)

    async def test_a_replayed_settlement_is_no_anomaly(self) -> None:
        user = await self.user()
        invoice = await self.open_invoice(user, 5)
        settled = self.fake.settle(invoice.payment_hash)
        await settle_invoices(self.context, [settled], cursor_node=PUBKEY)
        await settle_invoices(self.context, [settled], cursor_node=PUBKEY)
        self.assertEqual(await self.anomaly_kinds(), [])

    async def anomaly_rows(self):
        async with self.sessions() as session:
            return (
                await session.execute(
                    text(
                        "SELECT kind, fingerprint, invoice_id, payment_hash, details"
                        " FROM anomalies ORDER BY id"
                    )
                )
            ).all()

    async def test_an_unknown_hash_is_recorded_with_its_figures(self) -> None:
        payment_hash = os.urandom(32)
        # No amt_paid from the node (a replayed record): the invoice's value stands in for it.
        node = replace(self.node_settled(payment_hash, 7_000), amt_paid_msat=0, settle_index=12)
        with self.assertLogs("lightning_wallet.anomalies", level="ERROR") as logs:
            await settle_invoices(self.context, [node], cursor_node=PUBKEY)
        [row] = await self.anomaly_rows()
        self.assertEqual(row.kind, anomalies.SETTLEMENT_UNKNOWN_INVOICE)
        self.assertEqual(row.fingerprint, f"{anomalies.SETTLEMENT_UNKNOWN_INVOICE}:{payment_hash.hex()}")
        self.assertEqual((row.invoice_id, bytes(row.payment_hash)), (None, payment_hash))
        self.assertEqual(
            {k: v for k, v in row.details.items() if k != "message"},
            {"paymentHash": payment_hash.hex(), "amountPaidMsat": 7_000, "settleIndex": 12, "rowState": None},
        )
        self.assertIn(payment_hash.hex(), row.details["message"])
        self.assertEqual([r.levelno for r in logs.records], [logging.ERROR])  # surplus, not a loss

    async def test_a_failed_row_is_recorded_against_the_invoice(self) -> None:
        user = await self.user()
        invoice = await self.open_invoice(user, 5)
        await self.set_row("invoices", invoice.id, state="failed")
        settled = self.fake.settle(invoice.payment_hash, 6_000)  # paid more than asked
        with self.assertLogs("lightning_wallet.anomalies", level="ERROR") as logs:
            await settle_invoices(self.context, [settled], cursor_node=PUBKEY)
        [row] = await self.anomaly_rows()
        self.assertEqual(row.kind, anomalies.SETTLEMENT_NOT_CREDITABLE)
        self.assertEqual(row.fingerprint, f"{anomalies.SETTLEMENT_NOT_CREDITABLE}:{invoice.id}")
        self.assertEqual((row.invoice_id, bytes(row.payment_hash)), (invoice.id, invoice.payment_hash))
        self.assertEqual(
            {k: v for k, v in row.details.items() if k != "message"},
            {
                "paymentHash": invoice.payment_hash.hex(),
                "amountPaidMsat": 6_000,
                "settleIndex": settled.settle_index,
                "rowState": "failed",
            },
        )
        self.assertIn(str(invoice.id), row.details["message"])
        self.assertIn("failed", row.details["message"])
        self.assertEqual([r.levelno for r in logs.records], [logging.ERROR])
        self.assertEqual((await self.invoice(invoice.id)).state, "failed")

    async def test_in_a_mixed_batch_only_the_uncreditable_ones_are_anomalies(self) -> None:
        user = await self.user()
        replayed, fresh, canceled = [await self.open_invoice(user, n) for n in (1, 2, 3)]
        replayed_node = self.fake.settle(replayed.payment_hash)
        await settle_invoices(self.context, [replayed_node], cursor_node=PUBKEY)
        await self.set_row("invoices", canceled.id, state="canceled")
        unknown = os.urandom(32)
        batch = [
            replayed_node,  # already credited: a replay, no anomaly, and the loop goes on
            self.fake.settle(fresh.payment_hash),
            self.node_settled(unknown),
            self.fake.settle(canceled.payment_hash),
        ]
        result = await settle_invoices(self.context, batch, cursor_node=PUBKEY)
        self.assertEqual([c.invoice_id for c in result.credited], [fresh.id])
        rows = await self.anomaly_rows()
        self.assertEqual(
            sorted((r.kind, r.details["rowState"]) for r in rows),
            [(anomalies.SETTLEMENT_NOT_CREDITABLE, "canceled"), (anomalies.SETTLEMENT_UNKNOWN_INVOICE, None)],
        )
        self.assertEqual((await self.balance(user)).balance_msat, 3_000)
        await self.assert_ledger_consistent()


class LedgerCheckTests(SafetyCase):
    async def test_a_consistent_ledger_is_ok(self) -> None:
        await self.user(balance_sat=10)
        result = await crons.check_ledger(self.context)
        self.assertEqual(
            (
                result["ledger_ok"],
                result["balance_mismatches"],
                result["hold_mismatches"],
                result["mismatches"],
            ),
            (True, 0, 0, []),
        )
        self.assertEqual(await self.anomaly_kinds(), [])

    async def test_a_balance_that_disagrees_with_its_entries_is_found_and_recorded(self) -> None:
        user = await self.user(balance_sat=10)
        # A bug (or a hand edit) changes a balance without an entry: the ledger no longer sums to zero.
        await self.set_row("accounts", await self.account_of(user), balance_msat=99_000)
        result = await crons.check_ledger(self.context)
        self.assertEqual((result["ledger_ok"], result["balance_mismatches"]), (False, 1))
        self.assertEqual(
            sorted(await self.anomaly_kinds()),
            sorted([anomalies.LEDGER_UNBALANCED, anomalies.BALANCE_MISMATCH]),
        )
        await crons.check_ledger(self.context)  # the next pass counts the same anomalies again, no new rows
        self.assertEqual(int(await self.scalar("SELECT max(occurrences) FROM anomalies")), 2)

    async def test_a_hold_without_its_payment_is_found_and_recorded(self) -> None:
        user = await self.user(balance_sat=10)
        await self.set_row("accounts", await self.account_of(user), held_msat=5)
        result = await crons.check_ledger(self.context)
        self.assertEqual((result["ledger_ok"], result["hold_mismatches"]), (True, 1))
        self.assertEqual(await self.anomaly_kinds(), [anomalies.HOLD_MISMATCH])


class IdempotencyPurgeTests(SafetyCase):
    async def test_keys_older_than_the_ttl_are_purged(self) -> None:
        user = await self.user()
        async with self.sessions() as session, session.begin():
            for key, age_s in (("old", self.settings.idempotency_ttl_s + 60), ("new", 60)):
                await session.execute(
                    text(
                        "INSERT INTO idempotency_keys (user_id, key, endpoint, request_hash, created_at)"
                        " VALUES (:u, :k, 'POST /api/v1/invoices', '\\x00', :at)"
                    ),
                    {"u": user, "k": key, "at": ago(age_s)},
                )
        self.assertEqual(await crons.purge_idempotency_keys(self.ctx()), {"purged": 1})
        self.assertEqual(await self.scalar("SELECT string_agg(key, ',') FROM idempotency_keys"), "new")


class SilentStreamTests(SafetyCase):
    settings_overrides = {"settlement_idle_probe_s": 1.0, "settlement_sweep_s": 1.0}

    async def test_an_idle_stream_whose_node_does_not_answer_is_reconnected(self) -> None:
        sub = SettlementSubscription(self.context)
        task = asyncio.create_task(sub.follow())
        try:
            await wait_for(lambda: self.true(sub.stats.connects == 1 and sub.stats.idle_probes >= 1))
            self.assertEqual(sub.stats.connects, 1)  # the node answers the probe: the stream stays
            self.fake.fail_next["get_info"] = [LightningUnavailable("deadline exceeded")]
            await wait_for(lambda: self.true(sub.stats.connects >= 2), timeout_s=20, message="a reconnect")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def test_the_sweep_credits_what_the_stream_never_said(self) -> None:
        user = await self.user()
        seen = await self.open_invoice(user, 1)
        missed = await self.open_invoice(user, 7)
        self.fake.settle(seen.payment_hash)  # moves the cursor above 0: no start-up recheck loop
        await settle_invoices(
            self.context, [await self.fake.lookup_invoice(seen.payment_hash)], cursor_node=PUBKEY
        )
        sub = SettlementSubscription(self.context)
        task = asyncio.create_task(sub.sweep_forever())
        try:
            self.fake.settle(missed.payment_hash, announce=False)  # the stream never hears of it
            await wait_for(
                lambda: self.invoice_state(missed.id, "settled"), timeout_s=20, message="the sweep"
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.assertEqual((await self.balance(user)).balance_msat, 8_000)

    async def invoice_state(self, invoice_id, state: str) -> bool:
        return (await self.invoice(invoice_id)).state == state

    async def test_the_start_up_recheck_of_a_never_paid_node_stops_after_its_schedule(self) -> None:
        # While the cursor is 0 the open invoices are looked up again a few times, not every second
        # forever (each pass is a LookupInvoice per open invoice).
        user = await self.user()
        await self.open_invoice(user, 1)
        delays: list[float] = []
        real_sleep = asyncio.sleep

        async def quick_sleep(delay_s: float) -> None:
            delays.append(delay_s)
            await real_sleep(0)

        sub = SettlementSubscription(self.context)
        with mock.patch.object(subscription.asyncio, "sleep", quick_sleep):
            lookups_before = self.fake.calls["lookup_invoice"]
            await asyncio.wait_for(sub._reconcile_while_no_cursor(PUBKEY), 10)
        self.assertEqual(tuple(delays), subscription.RECHECK_DELAYS_S)
        lookups = self.fake.calls["lookup_invoice"] - lookups_before
        self.assertEqual(lookups, len(subscription.RECHECK_DELAYS_S))  # one open invoice, once per pass


class NodeIdentityTests(SafetyCase):
    def info(self, pubkey: str, network: str = "regtest") -> NodeInfo:
        return NodeInfo(pubkey, "alias", network, 1, "0.18.0-beta", True, 1)

    async def test_first_contact_records_the_node_and_another_node_is_refused(self) -> None:
        await verify_node_identity(self.sessions, self.info("02" + "aa" * 32), allow_change=False)
        await verify_node_identity(self.sessions, self.info("02" + "aa" * 32), allow_change=False)
        with self.assertRaises(NodeIdentityMismatch) as raised:
            await verify_node_identity(self.sessions, self.info("03" + "bb" * 32), allow_change=False)
        self.assertIn("02" + "aa" * 32, str(raised.exception))
        self.assertIn("03" + "bb" * 32, str(raised.exception))
        with self.assertRaises(NodeIdentityMismatch):  # another network is another node too
            await verify_node_identity(
                self.sessions, self.info("02" + "aa" * 32, "mainnet"), allow_change=False
            )
        self.assertEqual(await self.scalar("SELECT identity_pubkey FROM node_identity"), "02" + "aa" * 32)

    async def test_an_allowed_change_records_the_new_node(self) -> None:
        await verify_node_identity(self.sessions, self.info("02" + "aa" * 32), allow_change=False)
        await verify_node_identity(self.sessions, self.info("03" + "bb" * 32), allow_change=True)
        self.assertEqual(await self.scalar("SELECT identity_pubkey FROM node_identity"), "03" + "bb" * 32)


class JsonJobsTests(SafetyCase):
    def test_jobs_and_results_are_json_and_exceptions_keep_their_type_and_message(self) -> None:
        data = {"f": "pay_invoice", "a": ["id"], "r": ValueError("boom"), "when": ago(0)}
        decoded = jobs.deserialize(jobs.serialize(data))
        self.assertEqual(decoded["r"], {"error": "ValueError", "message": "boom"})
        self.assertEqual(decoded["a"], ["id"])
        with self.assertRaises(TypeError):
            jobs.serialize({"x": object()})

    async def test_an_enqueued_job_is_readable_with_a_json_decoder(self) -> None:
        import json

        await self.arq.enqueue_job(jobs.CREATE_INVOICE, "row-id", _job_id="create_invoice:row-id")
        raw = await self.redis.get("arq:job:create_invoice:row-id")
        self.assertEqual(json.loads(raw)["f"], jobs.CREATE_INVOICE)
        self.assertEqual(json.loads(raw)["a"], ["row-id"])
