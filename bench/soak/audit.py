"""Quiesce, then audit every cent against the database and the node.

Each check returns violations: dicts with a ``check`` name and the ids that prove it. The checks:
every 2xx the clients got is reflected (``expectations``); every ledger transaction sums to zero;
every account's balance is the sum of its entries; each user's balance = settled incoming -
succeeded outgoing (amount + fee) +- adjustments; an invoice credited and a payment debited at most
once (exactly once when settled / succeeded, never when failed); our settled invoices = alice's
settled invoices and our succeeded external payments = alice's succeeded payments, one per hash;
nothing pending or in flight, no hold left; no anomaly; every webhook event delivered to the
receiver, verified; no error or critical log line that no fault explains.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from bench.soak.faults import Fault
from bench.soak.receiver import Receiver
from bench.stack import asyncpg_dsn
from shared.lightning.grpc_client import GrpcLightningClient
from shared.lightning.types import InvoiceState, PaymentStatus

# A fault explains error lines of the kinds it causes, from its start until this long after its end
# (a killed worker's job is taken over when its in-progress key expires: job timeout + 10 s).
EXPLAIN_AFTER_S = 45.0
EXPLAINS = {
    "worker_kill": ("connection", "unavailable", "in-progress", "timeout"),
    "api_kill": ("connection", "unavailable", "timeout"),
    "redis_restart": ("redis", "connection", "lease", "timeout", "unavailable", "error 111"),
    "simnet_restart": ("unavailable", "connection", "lnd", "stream", "timeout"),
    "pg_terminate": ("terminat", "connection", "closed", "admin", "shutdown", "interface"),
    "lease_freeze": ("lease", "timeout"),
}


async def _every_page(fetch: Callable[[int], Awaitable[list]], index_of: Callable[[Any], int]) -> list:
    found: list = []
    offset = 0
    while page := await fetch(offset):
        found += page
        offset = max(index_of(item) for item in page)
    return found


async def node_invoices(alice: GrpcLightningClient) -> list:
    return await _every_page(
        lambda offset: alice.list_invoices(index_offset=offset, max_invoices=1000), lambda i: i.add_index
    )


async def node_payments(alice: GrpcLightningClient) -> list:
    return await _every_page(
        lambda offset: alice.list_payments(index_offset=offset, max_payments=1000), lambda p: p.payment_index
    )


async def quiesce(database_url: str, alice: GrpcLightningClient, timeout_s: float) -> dict[str, Any]:
    """Wait (bounded) until no row is pending or in flight, every webhook is final and every node
    settlement is credited; return what was still moving at the end (empty when all settled)."""
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()
    left: dict[str, Any] = {}
    while True:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            left = {
                "payments_not_final": await conn.fetchval(
                    "SELECT count(*) FROM payments WHERE state IN ('pending', 'in_flight')"
                ),
                "invoices_pending": await conn.fetchval(
                    "SELECT count(*) FROM invoices WHERE state = 'pending'"
                ),
                "webhooks_pending": await conn.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"
                ),
            }
            ours = {
                bytes(row[0])
                for row in await conn.fetch("SELECT payment_hash FROM invoices WHERE state = 'settled'")
            }
        finally:
            await conn.close()
        try:
            settled = {i.payment_hash for i in await node_invoices(alice) if i.state == InvoiceState.SETTLED}
            left["node_settlements_not_credited"] = len(settled - ours)
            left["node_payments_in_flight"] = sum(
                p.status == PaymentStatus.IN_FLIGHT for p in await node_payments(alice)
            )
        except Exception as exc:  # the node must answer by now; keep asking until the deadline
            left["node_error"] = repr(exc)
        if not any(left.values()) or time.monotonic() > deadline:
            left = {key: value for key, value in left.items() if value}
            left["waited_s"] = round(time.monotonic() - started, 1)
            return left
        await asyncio.sleep(1.0)


class Audit:
    def __init__(self, database_url: str, alice: GrpcLightningClient, receiver: Receiver) -> None:
        self.database_url = database_url
        self.alice = alice
        self.receiver = receiver
        self.violations: list[dict[str, Any]] = []
        self.reconciliation: dict[str, Any] = {}

    def violation(self, check: str, **evidence: Any) -> None:
        self.violations.append({"check": check, **evidence})

    async def run(self, expectations: list[dict], faults: list[Fault], log_files: list[Path]) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self.database_url))
        try:
            checks = (
                lambda: self.check_expectations(conn, expectations),
                lambda: self.check_ledger(conn),
                lambda: self.check_user_balances(conn),
                lambda: self.check_once(conn),
                lambda: self.check_final(conn),
                lambda: self.check_node(conn),
                lambda: self.check_webhooks(conn),
            )
            for check in checks:
                try:
                    await check()
                except Exception as exc:  # a check that cannot run is a failed check, never a pass
                    self.violation("audit_error", error=repr(exc))
        finally:
            await conn.close()
        self.check_logs(log_files, faults)

    # -- what the clients were told ----------------------------------------------------------------

    async def check_expectations(self, conn: asyncpg.Connection, expectations: list[dict]) -> None:
        invoices = {
            str(r["id"]): r
            for r in await conn.fetch(
                "SELECT id, user_id, state, amount_msat, amount_paid_msat, payment_hash FROM invoices"
            )
        }
        by_hash = {bytes(r["payment_hash"]).hex(): r for r in invoices.values() if r["payment_hash"]}
        payments = {
            str(r["id"]): r for r in await conn.fetch("SELECT id, user_id, state, payment_hash FROM payments")
        }
        succeeded_hashes = {
            bytes(r["payment_hash"]).hex() for r in payments.values() if r["state"] == "succeeded"
        }
        users = {str(r["id"]) for r in await conn.fetch("SELECT id FROM users")}
        adjustments = {str(r["id"]) for r in await conn.fetch("SELECT id FROM adjustments")}
        for item in expectations:
            what = item["what"]
            if what == "user" and item["userId"] not in users:
                self.violation("2xx_not_reflected", expected=item)
            elif what == "invoice" and item["invoiceId"] not in invoices:
                self.violation("2xx_not_reflected", expected=item)
            elif what == "invoice_settled":
                row = invoices.get(item["invoiceId"])
                paid = row and (row["amount_paid_msat"] or row["amount_msat"])
                if row is None or row["state"] != "settled" or paid != item["amountSat"] * 1000:
                    self.violation("paid_invoice_not_credited", expected=item, row=_row(row))
            elif what == "invoice_hash" and item["paymentHash"] not in by_hash:
                self.violation("2xx_not_reflected", expected=item)
            elif what == "invoice_hash_settled":
                row = by_hash.get(item["paymentHash"])
                if row is None or row["state"] != "settled":
                    self.violation("paid_invoice_not_credited", expected=item, row=_row(row))
            elif what == "payment":
                row = payments.get(item["paymentId"])
                told_final = item["answered"] == 200 and item["status"] in ("succeeded", "failed")
                if row is None or (told_final and row["state"] != item["status"]):
                    self.violation("2xx_not_reflected", expected=item, row=_row(row))
            elif what == "payment_fails":
                row = payments.get(item["paymentId"])
                if row is None or row["state"] != "failed":
                    self.violation("failing_payment_not_failed", expected=item, row=_row(row))
            elif what == "payment_hash_succeeded" and item["paymentHash"] not in succeeded_hashes:
                self.violation("2xx_not_reflected", expected=item)
            elif what == "adjustment" and item["adjustmentId"] not in adjustments:
                self.violation("2xx_not_reflected", expected=item)
        self.reconciliation["expectations_checked"] = dict(Counter(item["what"] for item in expectations))

    # -- the ledger -------------------------------------------------------------------------------

    async def check_ledger(self, conn: asyncpg.Connection) -> None:
        for row in await conn.fetch(
            """SELECT txn_id, sum(amount_msat) AS total FROM ledger_entries
               GROUP BY txn_id HAVING sum(amount_msat) <> 0"""
        ):
            self.violation("unbalanced_transaction", txnId=str(row["txn_id"]), sumMsat=row["total"])
        for row in await conn.fetch(
            """SELECT a.id, a.kind, a.balance_msat, coalesce(sum(e.amount_msat), 0) AS entries
               FROM accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id
               GROUP BY a.id HAVING a.balance_msat <> coalesce(sum(e.amount_msat), 0)"""
        ):
            self.violation("balance_not_sum_of_entries", **_row(row))
        self.reconciliation["ledger_transactions"] = await conn.fetchval(
            "SELECT count(DISTINCT txn_id) FROM ledger_entries"
        )
        self.reconciliation["ledger_total_msat"] = await conn.fetchval(
            "SELECT coalesce(sum(amount_msat), 0) FROM ledger_entries"
        )

    async def check_user_balances(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            """SELECT a.id AS account_id, a.user_id, a.balance_msat, a.held_msat,
                 (SELECT coalesce(sum(coalesce(i.amount_paid_msat, i.amount_msat)), 0) FROM invoices i
                   WHERE i.account_id = a.id AND i.state = 'settled') AS incoming,
                 (SELECT coalesce(sum(p.amount_msat + coalesce(p.fee_msat, 0)), 0) FROM payments p
                   WHERE p.account_id = a.id AND p.state = 'succeeded') AS outgoing,
                 (SELECT coalesce(sum(CASE d.kind WHEN 'credit' THEN d.amount_msat
                                                  ELSE -d.amount_msat END), 0)
                   FROM adjustments d
                   WHERE d.user_id = a.user_id AND d.kind IN ('credit', 'debit')) AS adjusted
               FROM accounts a WHERE a.kind = 'user'"""
        )
        for row in rows:
            expected = row["incoming"] - row["outgoing"] + row["adjusted"]
            if row["balance_msat"] != expected:
                self.violation("user_balance_mismatch", expectedMsat=expected, **_row(row))
        self.reconciliation["users_checked"] = len(rows)
        self.reconciliation["liabilities_msat"] = sum(row["balance_msat"] for row in rows)

    async def check_once(self, conn: asyncpg.Connection) -> None:
        for row in await conn.fetch(
            """SELECT i.id, i.state, count(e.id) AS credits FROM invoices i
               LEFT JOIN ledger_entries e ON e.invoice_id = i.id AND e.amount_msat > 0
                 AND e.kind IN ('invoice_settled', 'internal_payment')
               GROUP BY i.id HAVING count(e.id) <> (CASE WHEN i.state = 'settled' THEN 1 ELSE 0 END)"""
        ):
            self.violation(
                "invoice_credit_count", invoiceId=str(row["id"]), state=row["state"], credits=row["credits"]
            )
        for row in await conn.fetch(
            """SELECT p.id, p.state, count(e.id) AS debits FROM payments p
               LEFT JOIN ledger_entries e ON e.payment_id = p.id AND e.amount_msat < 0
                 AND e.kind IN ('payment', 'internal_payment')
               GROUP BY p.id HAVING count(e.id) <> (CASE WHEN p.state = 'succeeded' THEN 1 ELSE 0 END)"""
        ):
            self.violation(
                "payment_debit_count", paymentId=str(row["id"]), state=row["state"], debits=row["debits"]
            )

    async def check_final(self, conn: asyncpg.Connection) -> None:
        for row in await conn.fetch("SELECT id, state FROM payments WHERE state IN ('pending', 'in_flight')"):
            self.violation("payment_not_final", paymentId=str(row["id"]), state=row["state"])
        for row in await conn.fetch("SELECT id FROM invoices WHERE state = 'pending'"):
            self.violation("invoice_not_final", invoiceId=str(row["id"]))
        for row in await conn.fetch("SELECT id, kind, held_msat FROM accounts WHERE held_msat <> 0"):
            self.violation("hold_left", accountId=row["id"], kind=row["kind"], heldMsat=row["held_msat"])
        for row in await conn.fetch(
            """SELECT id, kind, payment_id, invoice_id, account_id, payment_hash, details, occurrences
               FROM anomalies"""
        ):
            self.violation("anomaly", **_row(row))
        latest = await conn.fetchrow(
            "SELECT status, mismatches FROM reconciliation_runs ORDER BY id DESC LIMIT 1"
        )
        self.reconciliation["last_reconciliation_run"] = latest["status"] if latest else None

    # -- the node ---------------------------------------------------------------------------------

    async def check_node(self, conn: asyncpg.Connection) -> None:
        node_settled = {
            i.payment_hash.hex() for i in await node_invoices(self.alice) if i.state == InvoiceState.SETTLED
        }
        ours_settled = {
            bytes(r[0]).hex()
            for r in await conn.fetch(
                """SELECT DISTINCT i.payment_hash FROM invoices i JOIN ledger_entries e ON e.invoice_id = i.id
                   WHERE i.state = 'settled' AND e.kind = 'invoice_settled'"""
            )
        }
        for hash_hex in sorted(node_settled - ours_settled):
            self.violation("node_settled_not_ours", paymentHash=hash_hex)
        for hash_hex in sorted(ours_settled - node_settled):
            self.violation("ours_settled_not_node", paymentHash=hash_hex)
        succeeded = Counter(
            p.payment_hash.hex()
            for p in await node_payments(self.alice)
            if p.status == PaymentStatus.SUCCEEDED
        )
        for hash_hex, count in succeeded.items():
            if count > 1:
                self.violation("node_paid_twice", paymentHash=hash_hex, times=count)
        ours_paid = Counter(
            bytes(r[0]).hex()
            for r in await conn.fetch(
                "SELECT payment_hash FROM payments WHERE state = 'succeeded' AND NOT internal"
            )
        )
        for hash_hex in sorted(set(succeeded) - set(ours_paid)):
            self.violation("node_payment_not_ours", paymentHash=hash_hex)
        for hash_hex, count in sorted(ours_paid.items()):
            if hash_hex not in succeeded or count > 1:
                self.violation("ours_payment_not_node", paymentHash=hash_hex, rows=count)
        balance = await self.alice.channel_balance()
        treasury = await conn.fetchval("SELECT balance_msat FROM accounts WHERE kind = 'treasury'")
        self.reconciliation.update(
            {
                "invoices_settled_ours": len(ours_settled),
                "invoices_settled_node": len(node_settled),
                "internal_settlements": await conn.fetchval(
                    "SELECT count(*) FROM ledger_entries WHERE kind = 'internal_payment' AND amount_msat > 0"
                ),
                "payments_succeeded_ours": sum(ours_paid.values()),
                "payments_succeeded_node": sum(succeeded.values()),
                "payments_failed_ours": await conn.fetchval(
                    "SELECT count(*) FROM payments WHERE state = 'failed'"
                ),
                "treasury_msat": treasury,
                "node_local_balance_msat": balance.local_msat,
                "surplus_msat": balance.local_msat
                - self.reconciliation.get("liabilities_msat", 0)
                - treasury,
            }
        )
        if self.reconciliation["surplus_msat"] < 0:
            self.violation(
                "insolvent", **{k: self.reconciliation[k] for k in ("treasury_msat", "surplus_msat")}
            )

    # -- webhooks ---------------------------------------------------------------------------------

    async def check_webhooks(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT id, webhook_id, event, state, attempts, last_error FROM webhook_deliveries"
        )
        for row in rows:
            if row["state"] != "delivered" or row["webhook_id"] not in self.receiver.delivered:
                self.violation(
                    "webhook_not_delivered",
                    received=row["webhook_id"] in self.receiver.delivered,
                    **_row(row),
                )
        expected = await conn.fetchval(
            """SELECT (SELECT count(*) FROM invoices WHERE state = 'settled' AND webhook_url IS NOT NULL)
                    + (SELECT count(*) FROM payments
                       WHERE state IN ('succeeded', 'failed') AND webhook_url IS NOT NULL)"""
        )
        if expected != len(rows):
            self.violation("webhook_events_missing", finalRowsWithUrl=expected, deliveries=len(rows))
        for bad in self.receiver.bad_signatures:
            self.violation("webhook_bad_signature", **bad)
        self.reconciliation["webhooks"] = {
            "deliveries": len(rows),
            "received_distinct": len(self.receiver.delivered),
            "posts": self.receiver.posts,
            "refused_once_on_purpose": len(self.receiver.refused),
            "attempts_total": sum(row["attempts"] for row in rows),
        }

    # -- logs -------------------------------------------------------------------------------------

    def check_logs(self, log_files: list[Path], faults: list[Fault]) -> None:
        explained, unexplained = Counter(), 0
        for path in log_files:
            for line_no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                entry = _error_entry(line)
                if entry is None:
                    continue
                at, text = entry
                fault = _explaining_fault(faults, at, text)
                if fault is not None:
                    explained[fault.kind] += 1
                    continue
                unexplained += 1
                self.violation("error_log", file=path.name, line=line_no, text=text[:600])
        self.reconciliation["error_logs_explained_by_fault"] = dict(explained)
        self.reconciliation["error_logs_unexplained"] = unexplained


def _row(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    out = {}
    for key, value in dict(row).items():
        if isinstance(value, bytes):
            value = value.hex()
        elif not isinstance(value, (int, str, float, bool, type(None))):
            value = str(value)
        out[key] = value
    return out


def _error_entry(line: str) -> tuple[float | None, str] | None:
    """(unix time or None, text) of an error/critical JSON log line or a bare traceback line."""
    try:
        entry = json.loads(line)
    except ValueError:
        return (None, line) if line.startswith("Traceback") else None
    if not isinstance(entry, dict) or entry.get("level") not in ("error", "critical"):
        return None
    from datetime import datetime

    at = datetime.fromisoformat(entry["ts"]).timestamp() if "ts" in entry else None
    text = f"{entry.get('logger')}: {entry.get('msg')} {entry.get('exc', '')[-400:]}"
    return at, text


def _explaining_fault(faults: list[Fault], at: float | None, text: str) -> Fault | None:
    lowered = text.lower()
    for fault in faults:
        if at is not None and not (fault.started - 1.0 <= at <= fault.ended + EXPLAIN_AFTER_S):
            continue
        if at is None:
            continue
        if any(word in lowered for word in EXPLAINS[fault.kind]):
            return fault
    return None
