"""Payments between simnet nodes: validation with LND's texts, HTLC lock, delivery, settle/fail.

A payment moves through phases (models.PHASE_*) that are persisted, so a restart resumes it:
new -> locked -> (held ->) delivered: settled, or accepted on a hold invoice until
Settle/CancelInvoice. Balances: the payer's outbound pays amount + fee, the payee's inbound
receives the amount; the fee goes to the (implicit) routing hop between them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from lnd_simnet import bolt11codec
from lnd_simnet.errors import RpcFailure
from lnd_simnet.models import (
    FAILED,
    IN_FLIGHT,
    OPEN,
    PHASE_ACCEPTED,
    PHASE_DONE,
    PHASE_HELD,
    PHASE_LOCKED,
    PHASE_NEW,
    REASON_INCORRECT_PAYMENT_DETAILS,
    REASON_INSUFFICIENT_BALANCE,
    REASON_NO_ROUTE,
    REASON_TIMEOUT,
    REASONS,
    SUCCEEDED,
    SimInvoice,
    SimPayment,
)

if TYPE_CHECKING:
    from lnd_simnet.network import Network
    from lnd_simnet.node import Node

log = logging.getLogger(__name__)
MARKER = "simnet:"


@dataclass(frozen=True, slots=True)
class Markers:
    fail: str | None = None
    hold: bool = False
    delay_ms: int | None = None


def parse_markers(memo: str) -> Markers:
    """``simnet:no_route``, ``simnet:insufficient_balance``, ``simnet:timeout``, ``simnet:hold``,
    ``simnet:delay=MS``, ``simnet:fail=<reason>`` anywhere in the payee's invoice memo."""
    if MARKER not in memo:
        return Markers()
    fail, hold, delay = None, False, None
    for word in memo.replace(",", " ").split():
        if not word.startswith(MARKER):
            continue
        key, _, value = word[len(MARKER) :].partition("=")
        if key in ("no_route", "insufficient_balance", "timeout"):
            fail = key
        elif key == "fail" and value in REASONS:
            fail = value
        elif key == "hold":
            hold = True
        elif key == "delay" and value.isdigit():
            delay = int(value)
    return Markers(fail, hold, delay)


def _go_time(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


class PaymentEngine:
    def __init__(self, network: Network) -> None:
        self.net = network
        self._tasks: set[asyncio.Task] = set()

    # ---- SendPaymentV2 -------------------------------------------------------------------
    def start(self, payer: Node, req) -> SimPayment:
        """Validate a routerrpc.SendPaymentRequest, record the payment and launch it."""
        if not req.payment_request:
            raise RpcFailure("simnet supports payments by payment_request only")
        try:
            pr = self.net.decode_payreq(req.payment_request)
        except bolt11codec.PayReqError as exc:
            raise RpcFailure(str(exc)) from exc
        if pr.network != "regtest":
            raise RpcFailure("invoice not for current active network 'regtest'")
        if req.amt and req.amt_msat:
            raise RpcFailure("sat and msat arguments are mutually exclusive")
        if req.fee_limit_sat and req.fee_limit_msat:
            raise RpcFailure("sat and msat arguments are mutually exclusive")
        if req.amt < 0 or req.amt_msat < 0 or req.fee_limit_sat < 0 or req.fee_limit_msat < 0:
            raise RpcFailure("amount cannot be negative")
        req_amt_msat = req.amt * 1000 + req.amt_msat
        if pr.amount_msat and req_amt_msat:
            raise RpcFailure("amount must not be specified when paying a non-zero amount invoice")
        if not pr.amount_msat and not req_amt_msat:
            raise RpcFailure("amount must be specified when paying a zero amount invoice")
        expires = pr.timestamp + pr.expiry_s
        if time.time() > expires:
            raise RpcFailure(f"invoice expired. Valid until {_go_time(expires)}")
        if pr.payee == payer.pubkey and not req.allow_self_payment:
            raise RpcFailure("self-payments not allowed")
        existing = payer.payments.get(pr.payment_hash)
        if existing is not None and existing.status == SUCCEEDED:
            raise RpcFailure("invoice is already paid", grpc.StatusCode.ALREADY_EXISTS)
        if existing is not None and existing.status == IN_FLIGHT:
            text = "payment already exists" if existing.phase == PHASE_NEW else "payment is in transition"
            raise RpcFailure(text, grpc.StatusCode.ALREADY_EXISTS)
        pay = SimPayment(
            node=payer.name,
            payment_hash=pr.payment_hash,
            payment_request=req.payment_request,
            payee_pubkey=pr.payee,
            value_msat=pr.amount_msat or req_amt_msat,
            fee_limit_msat=req.fee_limit_sat * 1000 + req.fee_limit_msat,
            creation_time_ns=time.time_ns(),
            payment_index=payer.next_payment_index,
        )
        payer.next_payment_index += 1
        payer.store.write(payments=[pay])
        payer.payments[pay.payment_hash] = pay
        self._spawn(self._run(pay))
        return pay

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def resume(self, pay: SimPayment) -> None:
        """After a restart: continue payments that were between steps."""
        if pay.status != IN_FLIGHT:
            return
        if pay.phase == PHASE_NEW:
            self._spawn(self._run(pay))
        elif pay.phase == PHASE_LOCKED:
            self._spawn(self._deliver_later(pay, 0))
        # held / accepted wait for `release` / Settle/CancelInvoice.

    async def _run(self, pay: SimPayment) -> None:
        try:
            await self._route(pay)
        except Exception:
            log.exception("payment %s crashed", pay.payment_hash.hex())

    async def _route(self, pay: SimPayment) -> None:
        net = self.net
        payer = net.nodes[pay.node]
        payee = net.node_by_pubkey(pay.payee_pubkey)
        inv = payee.invoices.get(pay.payment_hash) if payee else None
        markers = parse_markers(inv.memo) if inv else Markers()
        fail = markers.fail or payer.config.fail
        delay_ms = _first(markers.delay_ms, payer.config.delay_ms, net.settings.delay_ms)
        fee_msat = net.settings.fee_base_msat + pay.value_msat * net.settings.fee_ppm // 1_000_000
        if payee is None or fail == "no_route" or fee_msat > pay.fee_limit_msat:
            return self.fail(pay, REASON_NO_ROUTE)
        if fail == "insufficient_balance" or payer.balances.local_msat < pay.value_msat + fee_msat:
            return self.fail(pay, REASON_INSUFFICIENT_BALANCE)
        if payee.balances.remote_msat < pay.value_msat:
            return self.fail(pay, REASON_NO_ROUTE)
        if fail is not None:
            await asyncio.sleep(delay_ms / 1000)
            return self.fail(pay, REASONS.get(fail, REASON_TIMEOUT))
        self._lock(pay, payer, payee, fee_msat)
        if markers.hold or payer.config.hold:
            pay.phase = PHASE_HELD
            payer.store.write(payments=[pay])
            return None
        await self._deliver_later(pay, delay_ms)
        return None

    async def _deliver_later(self, pay: SimPayment, delay_ms: int) -> None:
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if pay.status == IN_FLIGHT and pay.phase == PHASE_LOCKED:
            self._deliver(pay)

    def _lock(self, pay: SimPayment, payer: Node, payee: Node, fee_msat: int) -> None:
        total = pay.value_msat + fee_msat
        payer.balances.local_msat -= total
        payer.balances.unsettled_local_msat += total
        payee.balances.remote_msat -= pay.value_msat
        payee.balances.unsettled_remote_msat += pay.value_msat
        pay.fee_msat = fee_msat
        pay.phase = PHASE_LOCKED
        pay.htlc_status = 0
        pay.attempt_time_ns = time.time_ns()
        self.net.store.write(payments=[pay], balances=[payer.balances, payee.balances])
        payer.publish_payment(pay)

    def _unlock(self, pay: SimPayment) -> list:
        """Return the reserved liquidity of a failed HTLC; the balances to persist."""
        if pay.htlc_status != 0:
            return []
        payer = self.net.nodes[pay.node]
        payee = self.net.node_by_pubkey(pay.payee_pubkey)
        total = pay.value_msat + pay.fee_msat
        payer.balances.local_msat += total
        payer.balances.unsettled_local_msat -= total
        payee.balances.remote_msat += pay.value_msat
        payee.balances.unsettled_remote_msat -= pay.value_msat
        pay.htlc_status = 2
        return [payer.balances, payee.balances]

    def _deliver(self, pay: SimPayment) -> None:
        payee = self.net.node_by_pubkey(pay.payee_pubkey)
        inv = payee.invoices.get(pay.payment_hash)
        if inv is not None:
            payee.expire_due()
        if inv is None or inv.state != OPEN or not _amount_ok(inv, pay.value_msat):
            return self.fail(pay, REASON_INCORRECT_PAYMENT_DETAILS)
        if inv.is_hold:
            payee.mark_accepted(inv, pay.value_msat, pay.node)
            pay.phase = PHASE_ACCEPTED
            self.net.store.write([inv], payments=[pay], node=payee.name)
            payee.publish_invoice(inv, to_all=False)
            return None
        return self.settle(pay, payee, inv, inv.preimage)

    # ---- terminal transitions --------------------------------------------------------------
    def settle(self, pay: SimPayment, payee: Node, inv: SimInvoice, preimage: bytes) -> None:
        """Atomically: invoice SETTLED (next settle_index), payment SUCCEEDED, balances moved."""
        payer = self.net.nodes[pay.node]
        total = pay.value_msat + pay.fee_msat
        payer.balances.unsettled_local_msat -= total
        payer.balances.remote_msat += total
        payee.balances.unsettled_remote_msat -= pay.value_msat
        payee.balances.local_msat += pay.value_msat
        inv.preimage = preimage
        payee.mark_settled(inv, pay.value_msat)
        inv.htlc_payer = None
        pay.status, pay.phase, pay.preimage, pay.htlc_status = SUCCEEDED, PHASE_DONE, preimage, 1
        pay.resolve_time_ns = time.time_ns()
        self.net.store.write(
            [inv], payments=[pay], balances=[payer.balances, payee.balances], node=payee.name
        )
        payee.publish_invoice(inv, to_all=True)
        payer.publish_payment(pay)

    def fail(
        self, pay: SimPayment, reason: int, extra_invoice: tuple[Node, SimInvoice] | None = None
    ) -> None:
        balances = self._unlock(pay)
        pay.status, pay.phase, pay.failure_reason = FAILED, PHASE_DONE, reason
        pay.fee_msat = 0
        pay.resolve_time_ns = time.time_ns()
        invoices, owner = ([extra_invoice[1]], extra_invoice[0].name) if extra_invoice else ([], "")
        self.net.store.write(invoices, payments=[pay], balances=balances, node=owner)
        self.net.nodes[pay.node].publish_payment(pay)

    # ---- hold invoices and held payments ------------------------------------------------------
    def held_payment_for(self, payee: Node, inv: SimInvoice) -> SimPayment | None:
        if inv.htlc_payer is None:
            return None
        return self.net.nodes[inv.htlc_payer].payments.get(inv.payment_hash)

    def release(self, pay: SimPayment, outcome: str, reason: str = "no_route") -> None:
        """Resolve a payment stuck by ``simnet:hold`` (or a node's hold knob)."""
        if pay.status != IN_FLIGHT or pay.phase != PHASE_HELD:
            raise RpcFailure("payment is not held", grpc.StatusCode.FAILED_PRECONDITION)
        if outcome == "succeed":
            pay.phase = PHASE_LOCKED
            self.net.store.write(payments=[pay])
            self._deliver(pay)
        else:
            self.fail(pay, REASONS.get(reason, REASON_NO_ROUTE))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _amount_ok(inv: SimInvoice, paid_msat: int) -> bool:
    if not inv.value_msat:
        return paid_msat > 0
    return inv.value_msat <= paid_msat <= 2 * inv.value_msat


def _first(*values):
    for v in values:
        if v is not None:
            return v
    return 0
