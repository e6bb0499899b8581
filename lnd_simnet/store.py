"""sqlite persistence for the whole network (one file, so a payment's settle, its invoice and both
balances commit in one transaction).

WAL with synchronous=NORMAL: a committed transaction is in the WAL before ``write`` returns, so a
SIGKILL of the simnet right after a reply loses nothing (only an OS crash could lose the tail).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from lnd_simnet.models import Balances, SimInvoice, SimPayment

_SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (node TEXT, hash BLOB, data TEXT NOT NULL, PRIMARY KEY (node, hash))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS payments (node TEXT, hash BLOB, data TEXT NOT NULL, PRIMARY KEY (node, hash))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS balances (node TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


class Store:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def write(
        self,
        invoices: Iterable[SimInvoice] = (),
        payments: Iterable[SimPayment] = (),
        balances: Iterable[Balances] = (),
        *,
        node: str = "",
    ) -> None:
        """Upsert the given records atomically. ``node`` names the invoices' owner."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            for inv in invoices:
                conn.execute(
                    "INSERT OR REPLACE INTO invoices VALUES (?, ?, ?)",
                    (node, inv.payment_hash, inv.to_json()),
                )
            for pay in payments:
                conn.execute(
                    "INSERT OR REPLACE INTO payments VALUES (?, ?, ?)",
                    (pay.node, pay.payment_hash, pay.to_json()),
                )
            for bal in balances:
                conn.execute("INSERT OR REPLACE INTO balances VALUES (?, ?)", (bal.node, bal.to_json()))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def load_invoices(self, node: str) -> list[SimInvoice]:
        rows = self._conn.execute("SELECT data FROM invoices WHERE node = ?", (node,)).fetchall()
        invoices = [SimInvoice.from_json(r[0]) for r in rows]
        invoices.sort(key=lambda i: i.add_index)
        return invoices

    def load_payments(self, node: str) -> list[SimPayment]:
        rows = self._conn.execute("SELECT data FROM payments WHERE node = ?", (node,)).fetchall()
        payments = [SimPayment.from_json(r[0]) for r in rows]
        payments.sort(key=lambda p: p.payment_index)
        return payments

    def load_balances(self, node: str) -> Balances | None:
        row = self._conn.execute("SELECT data FROM balances WHERE node = ?", (node,)).fetchone()
        return Balances.from_json(row[0]) if row else None

    def close(self) -> None:
        self._conn.close()
