"""An in-process LightningClient for worker tests, faithful to LND's semantics where money depends
on them (LND.md §2):

- AddInvoice with a known hash -> InvoiceAlreadyExists; LookupInvoice / TrackPaymentV2 of an
  unknown hash -> LightningNotFound.
- SubscribeInvoices: add_index=N replays invoices with add_index > N in their current state
  (canceled/accepted skipped), settle_index=M replays settles > M, then live adds and settles;
  index 0 replays nothing.
- SendPaymentV2 for a hash already succeeded -> PaymentAlreadySucceeded, in flight ->
  PaymentInFlight, failed -> a new attempt is allowed.
- CancelInvoice is idempotent; on a settled invoice it is refused ("invoice already settled").

Outgoing payments go to "external" invoices made with :meth:`FakeLightning.external_invoice`; what
happens to them is scripted per invoice (succeed with a fee, fail, hold until released). Faults:
``fail_next[method]`` is a list of exceptions raised by the next calls of that method;
``break_send_after_first`` cuts a SendPaymentV2 stream after its first update (the payment goes on).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from shared.errors import (
    InvoiceAlreadyExists,
    LightningError,
    LightningNotFound,
    LightningRequestError,
    LightningUnavailable,
    PaymentAlreadySucceeded,
    PaymentInFlight,
)
from shared.lightning.types import (
    AddedInvoice,
    ChannelBalance,
    DecodedPayReq,
    Invoice,
    InvoiceState,
    NodeInfo,
    PaymentStatus,
    PaymentUpdate,
    WalletBalance,
)

PUBKEY = "02" + "ab" * 32


def fake_payment_request(payment_hash: bytes, value_msat: int) -> str:
    amount = f"{value_msat * 10}p" if value_msat else ""
    return f"lnbcrt{amount}1fake{payment_hash.hex()}"


def hash_of_request(payment_request: str) -> bytes:
    return bytes.fromhex(payment_request.rsplit("fake", 1)[1])


@dataclass
class ExternalInvoice:
    payment_hash: bytes
    preimage: bytes
    value_msat: int
    outcome: str = "succeed"  # succeed | fail | hold
    fee_msat: int = 1000
    failure_reason: str = "NO_ROUTE"


@dataclass
class FakePayment:
    payment_hash: bytes
    value_msat: int
    status: PaymentStatus
    fee_msat: int = 0
    preimage: bytes | None = None
    failure_reason: str | None = None
    index: int = 0
    created_ns: int = field(default_factory=time.time_ns)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def update(self) -> PaymentUpdate:
        return PaymentUpdate(
            self.payment_hash,
            self.status,
            self.value_msat,
            self.fee_msat,
            self.preimage,
            self.failure_reason,
            self.index,
            self.created_ns,
        )


class FakeLightning:
    def __init__(self) -> None:
        self.invoices: dict[bytes, Invoice] = {}
        self.external: dict[bytes, ExternalInvoice] = {}
        self.payments: dict[bytes, FakePayment] = {}
        self.sends: list[bytes] = []
        self.calls: dict[str, int] = defaultdict(int)
        self.fail_next: dict[str, list[LightningError]] = defaultdict(list)
        self.break_send_after_first = False
        self.local_balance_msat = 5_000_000_000
        self._add_index = itertools.count(1)
        self._settle_index = itertools.count(1)
        self._pay_index = itertools.count(1)
        self._subscribers: list[asyncio.Queue[Invoice | LightningError]] = []
        self.closed = False

    # ---- test controls ------------------------------------------------------------------------
    def external_invoice(self, value_msat: int, **script: object) -> tuple[str, bytes]:
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).digest()
        self.external[payment_hash] = ExternalInvoice(payment_hash, preimage, value_msat, **script)  # type: ignore[arg-type]
        return fake_payment_request(payment_hash, value_msat), payment_hash

    def settle(
        self, payment_hash: bytes, amt_paid_msat: int | None = None, *, announce: bool = True
    ) -> Invoice:
        """Someone outside pays our invoice (``announce=False``: no open stream hears of it, as when
        it lands before SubscribeInvoices is registered on the node)."""
        inv = self.invoices[payment_hash]
        assert inv.state is InvoiceState.OPEN, inv.state
        settled = replace(
            inv,
            state=InvoiceState.SETTLED,
            settle_index=next(self._settle_index),
            amt_paid_msat=amt_paid_msat or inv.value_msat,
            settle_date=int(time.time()),
        )
        self.invoices[payment_hash] = settled
        if announce:
            self._broadcast(settled)
        return settled

    @property
    def subscriber_count(self) -> int:
        """Open SubscribeInvoices streams registered at this node."""
        return len(self._subscribers)

    def release(self, payment_hash: bytes, outcome: str = "succeed") -> None:
        payment = self.payments[payment_hash]
        self._resolve(payment, self.external[payment_hash], outcome)

    def break_subscriptions(self) -> None:
        """The node restarts: every open SubscribeInvoices stream fails."""
        for queue in self._subscribers:
            queue.put_nowait(LightningUnavailable("stream reset", grpc_code="UNAVAILABLE"))

    # ---- the protocol -------------------------------------------------------------------------
    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        if self.fail_next[method]:
            raise self.fail_next[method].pop(0)

    async def get_info(self) -> NodeInfo:
        self._enter("get_info")
        return NodeInfo(PUBKEY, "fake-alice", "regtest", 100, "0.18.0-beta fake", True, 1)

    async def add_invoice(
        self,
        *,
        value_msat: int,
        memo: str,
        expiry_s: int,
        preimage: bytes,
        description_hash: bytes | None = None,
    ) -> AddedInvoice:
        self._enter("add_invoice")
        payment_hash = hashlib.sha256(preimage).digest()
        if payment_hash in self.invoices:
            raise InvoiceAlreadyExists("invoice with payment hash already exists", grpc_code="UNKNOWN")
        if description_hash is not None and len(description_hash) != 32:
            raise LightningRequestError("description hash must be 32 bytes", grpc_code="UNKNOWN")
        invoice = Invoice(
            payment_hash,
            fake_payment_request(payment_hash, value_msat),
            memo,
            value_msat,
            0,
            InvoiceState.OPEN,
            next(self._add_index),
            0,
            int(time.time()),
            0,
            expiry_s or 86400,
            preimage,
            description_hash,
        )
        self.invoices[payment_hash] = invoice
        self._broadcast(invoice)
        return AddedInvoice(payment_hash, invoice.payment_request, invoice.add_index, b"\x00" * 32)

    async def lookup_invoice(self, payment_hash: bytes) -> Invoice:
        self._enter("lookup_invoice")
        if payment_hash not in self.invoices:
            raise LightningNotFound("unable to locate invoice", grpc_code="NOT_FOUND")
        return self.invoices[payment_hash]

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        self._enter("cancel_invoice")
        inv = self.invoices.get(payment_hash)
        if inv is None:
            raise LightningNotFound("unable to locate invoice", grpc_code="NOT_FOUND")
        if inv.state is InvoiceState.SETTLED:
            raise LightningRequestError("invoice already settled", grpc_code="UNKNOWN")
        self.invoices[payment_hash] = replace(inv, state=InvoiceState.CANCELED)

    async def subscribe_invoices(
        self, *, add_index: int = 0, settle_index: int = 0
    ) -> AsyncIterator[Invoice]:
        self._enter("subscribe_invoices")
        queue: asyncio.Queue[Invoice | LightningError] = asyncio.Queue()
        backlog: list[Invoice] = []
        if add_index:
            backlog += sorted(
                (
                    i
                    for i in self.invoices.values()
                    if i.add_index > add_index and i.state in (InvoiceState.OPEN, InvoiceState.SETTLED)
                ),
                key=lambda i: i.add_index,
            )
        if settle_index:
            backlog += sorted(
                (i for i in self.invoices.values() if i.settle_index > settle_index),
                key=lambda i: i.settle_index,
            )
        self._subscribers.append(queue)
        try:
            for invoice in backlog:
                yield invoice
            while True:
                item = await queue.get()
                if isinstance(item, LightningError):
                    raise item
                yield item
        finally:
            self._subscribers.remove(queue)

    def _broadcast(self, invoice: Invoice) -> None:
        for queue in self._subscribers:
            queue.put_nowait(invoice)

    async def decode_pay_req(self, payment_request: str) -> DecodedPayReq:
        self._enter("decode_pay_req")
        ext = self.external[hash_of_request(payment_request)]
        return DecodedPayReq(
            "03" + "cd" * 32,
            ext.payment_hash,
            ext.value_msat,
            int(time.time()),
            3600,
            "",
            None,
            b"\x00" * 32,
            80,
        )

    async def send_payment(
        self,
        *,
        payment_request: str,
        fee_limit_msat: int,
        timeout_s: int,
        amount_msat: int | None = None,
        no_inflight_updates: bool = False,
    ) -> AsyncIterator[PaymentUpdate]:
        self._enter("send_payment")
        payment_hash = hash_of_request(payment_request)
        existing = self.payments.get(payment_hash)
        if existing is not None and existing.status is PaymentStatus.SUCCEEDED:
            raise PaymentAlreadySucceeded("invoice is already paid", grpc_code="ALREADY_EXISTS")
        if existing is not None and existing.status is not PaymentStatus.FAILED:
            raise PaymentInFlight("payment is in transition", grpc_code="ALREADY_EXISTS")
        ext = self.external.get(payment_hash)
        if ext is None:
            raise LightningRequestError(
                "invoice not for current active network 'regtest'", grpc_code="UNKNOWN"
            )
        if (amount_msat is not None) == (ext.value_msat > 0):
            raise LightningRequestError("amount rules", grpc_code="UNKNOWN")
        self.sends.append(payment_hash)
        payment = FakePayment(
            payment_hash, amount_msat or ext.value_msat, PaymentStatus.IN_FLIGHT, index=next(self._pay_index)
        )
        self.payments[payment_hash] = payment
        if ext.fee_msat > fee_limit_msat and ext.outcome == "succeed":
            ext = replace(ext, outcome="fail", failure_reason="NO_ROUTE")
        yield payment.update()
        if self.break_send_after_first:
            if ext.outcome != "hold":
                self._resolve(payment, ext, ext.outcome)
            raise LightningUnavailable("Socket closed", grpc_code="UNAVAILABLE")
        if ext.outcome != "hold":
            self._resolve(payment, ext, ext.outcome)
        async for update in self._watch(payment):
            yield update

    async def track_payment(self, payment_hash: bytes) -> AsyncIterator[PaymentUpdate]:
        self._enter("track_payment")
        payment = self.payments.get(payment_hash)
        if payment is None:
            raise LightningNotFound("payment isn't initiated", grpc_code="NOT_FOUND")
        yield payment.update()
        if payment.status.is_final:
            return
        async for update in self._watch(payment):
            yield update

    async def _watch(self, payment: FakePayment) -> AsyncIterator[PaymentUpdate]:
        while not payment.status.is_final:
            await payment.changed.wait()
        yield payment.update()

    def _resolve(self, payment: FakePayment, ext: ExternalInvoice, outcome: str) -> None:
        if outcome == "succeed":
            payment.status, payment.preimage, payment.fee_msat = (
                PaymentStatus.SUCCEEDED,
                ext.preimage,
                ext.fee_msat,
            )
        else:
            payment.status, payment.failure_reason = PaymentStatus.FAILED, ext.failure_reason
        payment.changed.set()

    async def list_invoices(
        self, *, index_offset: int = 0, max_invoices: int = 1000, creation_date_start: int = 0
    ) -> list[Invoice]:
        self._enter("list_invoices")
        ordered = sorted(self.invoices.values(), key=lambda i: i.add_index)
        picked = [i for i in ordered if i.add_index > index_offset and i.creation_date >= creation_date_start]
        return picked[:max_invoices]

    async def list_payments(
        self,
        *,
        index_offset: int = 0,
        max_payments: int = 1000,
        include_incomplete: bool = True,
        creation_date_start: int = 0,
    ) -> list[PaymentUpdate]:
        self._enter("list_payments")
        ordered = sorted(self.payments.values(), key=lambda p: p.index)
        picked = [
            p.update()
            for p in ordered
            if p.index > index_offset
            and (include_incomplete or p.status is PaymentStatus.SUCCEEDED)
            and p.created_ns // 1_000_000_000 >= creation_date_start
        ]
        return picked[:max_payments]

    async def channel_balance(self) -> ChannelBalance:
        self._enter("channel_balance")
        return ChannelBalance(self.local_balance_msat, 5_000_000_000, 0, 0)

    async def wallet_balance(self) -> WalletBalance:
        return WalletBalance(100_000_000, 100_000_000, 0)

    async def close(self) -> None:
        self.closed = True
