"""One simulated LND node: identity, invoices (add/settle indexes), invoice subscriptions."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import heapq
import os
import time

import coincurve

from lnd_simnet import bolt11codec
from lnd_simnet.errors import RpcFailure, not_found_invoice
from lnd_simnet.models import (
    ACCEPTED,
    CANCELED,
    OPEN,
    SETTLED,
    Balances,
    NodeConfig,
    SimInvoice,
    SimPayment,
)
from lnd_simnet.store import Store

DEFAULT_EXPIRY_S = 86400
MAX_EXPIRY_S = 365 * 24 * 3600
DEFAULT_CLTV = 80
MAX_MEMO_BYTES = 1024
CURRENCY = "bcrt"


class Node:
    def __init__(self, name: str, key: coincurve.PrivateKey, store: Store, balances: Balances) -> None:
        self.name = name
        self.key = key
        self.pubkey = key.public_key.format()
        self.store = store
        self.balances = balances
        self.config = NodeConfig()
        self.invoices: dict[bytes, SimInvoice] = {}
        self.invoice_list: list[SimInvoice] = []  # by add_index - 1
        self.settled: list[SimInvoice] = []  # by settle_index - 1
        self.by_payreq: dict[str, SimInvoice] = {}
        self.payments: dict[bytes, SimPayment] = {}
        self.next_payment_index = 1
        # Subscribers: callables fed with (kind, record); the servicers build the wire messages.
        self.invoice_subscribers: set[asyncio.Queue] = set()
        self.single_subscribers: dict[bytes, set[asyncio.Queue]] = {}
        self.payment_subscribers: dict[bytes, set[asyncio.Queue]] = {}
        self.all_payment_subscribers: set[asyncio.Queue] = set()
        self._expiry_heap: list[tuple[int, int]] = []  # (expires_at, add_index)

    # ---- loading -------------------------------------------------------------------------
    def load(self) -> None:
        for inv in self.store.load_invoices(self.name):
            self._index(inv)
        for inv in self.settled_sorted():
            self.settled.append(inv)
        for pay in self.store.load_payments(self.name):
            self.payments[pay.payment_hash] = pay
            self.next_payment_index = max(self.next_payment_index, pay.payment_index + 1)

    def settled_sorted(self) -> list[SimInvoice]:
        return sorted((i for i in self.invoice_list if i.settle_index), key=lambda i: i.settle_index)

    def _index(self, inv: SimInvoice) -> None:
        self.invoices[inv.payment_hash] = inv
        self.invoice_list.append(inv)
        self.by_payreq[inv.payment_request] = inv
        if inv.state == OPEN:
            heapq.heappush(self._expiry_heap, (inv.creation_date + inv.expiry_s, inv.add_index))

    # ---- invoices ------------------------------------------------------------------------
    def add_invoice(
        self,
        *,
        memo: str,
        value_msat: int,
        expiry_s: int,
        preimage: bytes | None = None,
        payment_hash: bytes | None = None,
        description_hash: bytes | None = None,
        cltv_expiry: int = 0,
        private: bool = False,
    ) -> SimInvoice:
        """AddInvoice (preimage given or random) or AddHoldInvoice (payment_hash given)."""
        _validate_invoice(memo, value_msat, expiry_s, description_hash)
        is_hold = payment_hash is not None
        if is_hold:
            if len(payment_hash) != 32:
                raise RpcFailure(f"payment hash must be exactly 32 bytes, is instead {len(payment_hash)}")
        else:
            if preimage and len(preimage) != 32:
                raise RpcFailure(f"payment preimage must be exactly 32 bytes, is instead {len(preimage)}")
            preimage = preimage or os.urandom(32)
            payment_hash = hashlib.sha256(preimage).digest()
        if payment_hash in self.invoices:
            raise RpcFailure("invoice with payment hash already exists")
        expiry_s = expiry_s or DEFAULT_EXPIRY_S
        cltv_expiry = cltv_expiry or DEFAULT_CLTV
        now = int(time.time())
        payment_addr = os.urandom(32)
        payreq = bolt11codec.encode(
            self.key,
            currency=CURRENCY,
            amount_msat=value_msat,
            timestamp=now,
            payment_hash=payment_hash,
            payment_addr=payment_addr,
            description=memo,
            description_hash=description_hash,
            expiry_s=expiry_s,
            cltv_expiry=cltv_expiry,
        )
        inv = SimInvoice(
            payment_hash=payment_hash,
            preimage=None if is_hold else preimage,
            memo=memo,
            value_msat=value_msat,
            creation_date=now,
            expiry_s=expiry_s,
            cltv_expiry=cltv_expiry,
            payment_request=payreq,
            payment_addr=payment_addr,
            description_hash=description_hash,
            private=private,
            is_hold=is_hold,
            add_index=len(self.invoice_list) + 1,
        )
        self.store.write([inv], node=self.name)
        self._index(inv)
        self.publish_invoice(inv, to_all=True)
        return inv

    def lookup_invoice(self, payment_hash: bytes) -> SimInvoice:
        if len(payment_hash) != 32:
            raise RpcFailure(f"payment hash must be exactly 32 bytes, is instead {len(payment_hash)}")
        inv = self.invoices.get(payment_hash)
        if inv is None:
            if not self.invoices:
                raise RpcFailure("there are no existing invoices", not_found_invoice().code)
            raise not_found_invoice()
        self.expire_due()
        return inv

    def expire_due(self, now: float | None = None) -> None:
        """Cancel OPEN invoices past creation_date + expiry (LND's expiry watcher)."""
        now = time.time() if now is None else now
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            _, add_index = heapq.heappop(heap)
            inv = self.invoice_list[add_index - 1]
            if inv.state == OPEN:
                inv.state = CANCELED
                self.store.write([inv], node=self.name)
                self.publish_invoice(inv, to_all=False)

    def mark_settled(self, inv: SimInvoice, amt_paid_msat: int) -> None:
        """In-memory settle (the caller persists and publishes)."""
        inv.state = SETTLED
        inv.settle_index = len(self.settled) + 1
        inv.settle_date = int(time.time())
        inv.amt_paid_msat = amt_paid_msat
        self.settled.append(inv)

    def mark_accepted(self, inv: SimInvoice, amt_paid_msat: int, payer: str) -> None:
        inv.state = ACCEPTED
        inv.amt_paid_msat = amt_paid_msat
        inv.htlc_payer = payer

    # ---- events --------------------------------------------------------------------------
    def publish_invoice(self, inv: SimInvoice, *, to_all: bool) -> None:
        """Queue a snapshot to SubscribeSingleInvoice watchers and (adds/settles) SubscribeInvoices."""
        single = self.single_subscribers.get(inv.payment_hash, ())
        to_all = to_all and inv.state in (OPEN, SETTLED) and bool(self.invoice_subscribers)
        if not to_all and not single:
            return
        snapshot = _snapshot(inv)
        if to_all:
            for q in self.invoice_subscribers:
                q.put_nowait(snapshot)
        for q in single:
            q.put_nowait(snapshot)

    def publish_payment(self, pay: SimPayment) -> None:
        watchers = self.payment_subscribers.get(pay.payment_hash, ())
        if not watchers and not self.all_payment_subscribers:
            return
        snapshot = _snapshot(pay)
        for q in watchers:
            q.put_nowait(snapshot)
        for q in self.all_payment_subscribers:
            q.put_nowait(snapshot)

    def invoice_backlog(self, add_index: int, settle_index: int) -> list[SimInvoice]:
        """SubscribeInvoices replay: adds after add_index in their current state (OPEN/SETTLED only),
        then settles after settle_index."""
        out: list[SimInvoice] = []
        if add_index:
            out += [i for i in self.invoice_list[add_index:] if i.state in (OPEN, SETTLED)]
        if settle_index:
            out += self.settled[settle_index:]
        return [_snapshot(i) for i in out]


def _snapshot(record):
    """A copy, so queued events keep the state they were published with."""
    return dataclasses.replace(record)


def _validate_invoice(memo: str, value_msat: int, expiry_s: int, description_hash: bytes | None) -> None:
    if len(memo.encode()) > MAX_MEMO_BYTES:
        raise RpcFailure(f"memo too large: {len(memo.encode())} bytes (maxlen={MAX_MEMO_BYTES})")
    if value_msat < 0:
        raise RpcFailure("payment of negative value is not allowed, value is " + str(value_msat))
    if expiry_s < 0:
        raise RpcFailure(f"expiry of {expiry_s} seconds must be non-negative")
    if expiry_s > MAX_EXPIRY_S:
        raise RpcFailure(
            f"expiry of {expiry_s} seconds greater than max invoice expiry of {MAX_EXPIRY_S} seconds"
        )
    if description_hash is not None and len(description_hash) != 32:
        raise RpcFailure(f"description hash is {len(description_hash)} bytes, must be 32")
