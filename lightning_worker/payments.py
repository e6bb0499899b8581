"""Job ``pay_invoice``: settle a ``pending`` payment row, external (through LND) or internal.

One runner per payment: every run holds the payment's advisory lock (payment_lock.py) across
track -> send -> record, and does its database work on the lock's connection; a second run yields.

External payments never send twice: every run first asks LND (TrackPaymentV2). It sends when LND has
never seen the hash (NOT_FOUND), or when all LND knows is an earlier FAILED attempt that is not this
row's (LND accepts a new SendPaymentV2 for a hash whose payment failed: a failed payment must not make
the invoice unpayable). Before it sends, the row records that it is sending (``sent_at``) and which
earlier FAILED attempt it supersedes (``superseded_attempt_ns``, LND's creation time of that attempt),
so after a crash the next run tells this row's own attempt from the old one by tracking alone. If a
send races another, LND's ALREADY_EXISTS sends us back to tracking. Anything that leaves the outcome
unknown (node unreachable, stream cut, still in flight after the follow window) keeps the row as it is
and retries the job. Only an explicit FAILED of this row's attempt, or a refusal before any HTLC that
tracking confirms, marks the payment failed and gives the hold back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from arq import Retry
from sqlalchemy import func, select, update

from lightning_worker.context import WorkerContext, get_context
from lightning_worker.internal_payments import pay_internal
from lightning_worker.payment_lock import PaymentRun, payment_run
from lightning_worker.payment_records import FINAL_STATES, record_failure, record_success
from lightning_worker.retry import backoff_s, retry_transient
from shared.db.models import Payment
from shared.errors import (
    LightningNotFound,
    LightningRequestError,
    LightningUnavailable,
    PaymentAlreadySucceeded,
    PaymentInFlight,
)
from shared.events import RowEvent
from shared.lightning.types import PaymentStatus, PaymentUpdate

log = logging.getLogger(__name__)

# How long one job run follows a payment still in flight before handing over to a retry.
MIN_FOLLOW_S = 0.1
IN_FLIGHT_RETRY_CAP_S = 15.0
LOCKED_RETRY_CAP_S = 5.0
_HRP_AMOUNT = re.compile(r"^ln(?:bcrt|bc|tbs|tb|sb|sbt)(\d+[munp]?)?$")


def invoice_has_amount(payment_request: str) -> bool:
    """True when the BOLT11 string carries an amount (its human-readable part, before the last
    "1"): then LND refuses an explicit amount; a zero-amount invoice needs one."""
    hrp = payment_request.lower().rpartition("1")[0]
    match = _HRP_AMOUNT.match(hrp)
    if match is None:  # unknown currency prefix: let LND decide with the invoice's own amount
        return True
    return match.group(1) is not None


@retry_transient
async def pay_invoice(ctx: dict[str, Any], payment_id: str) -> dict[str, Any]:
    context = get_context(ctx)
    job_try = int(ctx.get("job_try") or 1)
    row_id = uuid.UUID(payment_id)
    async with payment_run(context.engine, row_id) as run:
        if run is None:  # another run holds this payment: let it finish, look again later
            raise Retry(defer=backoff_s(job_try, base_s=0.2, cap_s=LOCKED_RETRY_CAP_S))
        async with run.session() as session:
            row = await session.scalar(select(Payment).where(Payment.id == row_id))
        if row is None:
            log.warning("pay_invoice: no payment row %s", payment_id)
            return {"state": "missing"}
        if row.state in FINAL_STATES:
            return {"state": row.state}
        if row.internal:
            return await pay_internal(context, row, sessions=run.session)
        final = await _resolve_external(context, run, row)
        if final is None:  # still in flight, or we lost sight of it: look again later, never guess
            raise Retry(defer=backoff_s(job_try, base_s=0.2, cap_s=IN_FLIGHT_RETRY_CAP_S))
        if final.status is PaymentStatus.SUCCEEDED:
            return await record_success(context, row, final, sessions=run.session)
        return await record_failure(
            context, row, final.failure_reason or "failed", final=final, sessions=run.session
        )


def is_earlier_attempt(row: Payment, tracked: PaymentUpdate) -> bool:
    """True when what LND tracks for this hash is a FAILED attempt that is not this row's: one made
    before this row ever sent, or the one this row recorded as superseded when it sent."""
    if tracked.status is not PaymentStatus.FAILED:
        return False
    return row.sent_at is None or tracked.creation_time_ns == row.superseded_attempt_ns


_NOT_FOUND = object()


async def _track(context: WorkerContext, run: PaymentRun, row: Payment) -> PaymentUpdate | object | None:
    """What LND knows of the hash: a final update, None (in flight or unknown), or _NOT_FOUND."""
    try:
        return await _follow(context, run, row, context.lightning.track_payment(row.payment_hash))
    except LightningNotFound:
        return _NOT_FOUND
    except LightningRequestError as exc:  # a tracking refusal says nothing about the payment
        raise LightningUnavailable(f"track refused: {exc.message}") from exc


async def _resolve_external(context: WorkerContext, run: PaymentRun, row: Payment) -> PaymentUpdate | None:
    """The final update of this row's payment, or None while its outcome is not known yet."""
    for _ in range(3):
        tracked = await _track(context, run, row)
        if tracked is None:
            return None
        if tracked is not _NOT_FOUND and not is_earlier_attempt(row, tracked):  # type: ignore[arg-type]
            return tracked  # type: ignore[return-value]
        superseded = None if tracked is _NOT_FOUND else tracked.creation_time_ns  # type: ignore[union-attr]
        await _mark_sending(run, row, superseded)
        stream = context.lightning.send_payment(
            payment_request=row.payment_request,
            fee_limit_msat=row.fee_limit_msat,
            timeout_s=context.settings.payment_timeout_s,
            amount_msat=None if invoice_has_amount(row.payment_request) else row.amount_msat,
        )
        try:
            return await _follow(context, run, row, stream, refusal_is_final=True)
        except (PaymentInFlight, PaymentAlreadySucceeded):
            continue  # LND already has it (a concurrent or earlier send): track it instead
        except _Refused as refused:
            return await _confirm_refusal(context, run, row, refused.reason)
    raise LightningUnavailable("payment state did not settle between track and send")


class _Refused(Exception):
    """LND refused a send before its first update."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _confirm_refusal(
    context: WorkerContext, run: PaymentRun, row: Payment, reason: str
) -> PaymentUpdate | None:
    """A refusal releases the hold only once LND confirms it never started this row's payment.

    LND validates a request before it initiates the payment, so a refusal normally means nothing
    left; but the hold is money, so the word of the error text alone is not enough: ask
    TrackPaymentV2, and follow the payment if LND knows an attempt of this row's."""
    tracked = await _track(context, run, row)
    if tracked is _NOT_FOUND or (tracked is not None and is_earlier_attempt(row, tracked)):  # type: ignore[arg-type]
        return PaymentUpdate(
            row.payment_hash, PaymentStatus.FAILED, row.amount_msat, 0, None, reason[:500], 0
        )
    return tracked  # type: ignore[return-value]


async def _follow(
    context: WorkerContext,
    run: PaymentRun,
    row: Payment,
    stream: AsyncIterator[PaymentUpdate],
    *,
    refusal_is_final: bool = False,
) -> PaymentUpdate | None:
    """Follow a SendPaymentV2/TrackPaymentV2 stream to a final update, for a bounded time.

    A LightningRequestError before the first message of a *send* is LND refusing the request
    before any HTLC (bad, expired, self-payment, amount rules): a final failure. After the first
    message any error means the outcome is unknown."""
    received = 0
    follow_s = max(MIN_FOLLOW_S, context.settings.lnd_timeout_s)
    try:
        async with contextlib.aclosing(stream), asyncio.timeout(follow_s):
            async for update in stream:
                received += 1
                if update.status.is_final:
                    return update
                await _mark_in_flight(context, run, row)
    except TimeoutError:
        return None
    except LightningRequestError as exc:
        if refusal_is_final and received == 0:
            raise _Refused(exc.message or "refused by the node") from exc
        raise LightningUnavailable(f"stream broke after {received} update(s): {exc.message}") from exc
    except (LightningNotFound, PaymentInFlight, PaymentAlreadySucceeded):
        if received:
            raise LightningUnavailable("stream broke") from None
        raise
    return None  # the stream ended without a final state


async def _mark_sending(run: PaymentRun, row: Payment, superseded_attempt_ns: int | None) -> None:
    """Record, before the send, that this row is sending and which earlier FAILED attempt it
    supersedes. Written on the lock's connection: if that is gone, so is the lock, and we do not send."""
    now = datetime.now(UTC)
    async with run.session() as session, session.begin():
        sent_at = await session.scalar(
            update(Payment)
            .where(Payment.id == row.id, Payment.state.in_(("pending", "in_flight")))
            .values(
                attempts=Payment.attempts + 1,
                sent_at=func.coalesce(Payment.sent_at, now),
                superseded_attempt_ns=superseded_attempt_ns,
                updated_at=now,
            )
            .returning(Payment.sent_at)
        )
    row.superseded_attempt_ns = superseded_attempt_ns
    row.sent_at = sent_at


async def _mark_in_flight(context: WorkerContext, run: PaymentRun, row: Payment) -> None:
    if row.state != "pending":
        return
    async with run.session() as session, session.begin():
        result = await session.execute(
            update(Payment)
            .where(Payment.id == row.id, Payment.state == "pending")
            .values(state="in_flight", updated_at=datetime.now(UTC))
            .returning(Payment.id)
        )
        changed = result.scalar_one_or_none() is not None
    row.state = "in_flight"
    if changed:
        await context.publish([RowEvent("payment", row.id, "in_flight", row.user_id)])
