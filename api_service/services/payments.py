"""Outgoing payments: validate the BOLT11 request, hold the funds and insert the row in one transaction,
then hand the row to the worker (wallet contract).

Checks, in order: ``fromTreasury`` is admin-only (403); the string decodes and its signature verifies
(400); its network is ours (400); amount rules (400); not expired (422); fee limit (400); no active
payment for this hash (409 ALREADY_PAID when it succeeded, 409 CONFLICT while in progress); our own
invoice → internal, paying one's own invoice is refused (409), a settled one is ALREADY_PAID, an expired
or canceled one is INVOICE_EXPIRED (422). Then ONE transaction: Idempotency-Key row, hold (amount + fee
limit), payment row. The partial unique index on payment_hash is what really stops a double payment:
two concurrent requests that both passed the checks above cannot both insert; the loser's hold rolls
back with it.

Fee limit: it is the fee reserve held and the limit sent to LND, one number in whole sats. Default:
``ledger.fee_reserve_msat`` (FEE_RESERVE_PPM of the amount, at least FEE_RESERVE_MIN_SAT). A caller's
``feeLimitSat`` may be 0..(10% of the amount, rounded up, + 100 sat): enough for any sane route, and a
bound on what a typo can lock up. Internal payments pay no fee: their fee limit is 0.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from api_service.schemas.wallet import CreatePaymentBody, InFlightPaymentOut, PaymentOut
from api_service.security import CurrentUser
from api_service.services import idempotency
from api_service.services.invoices import parse_uuid
from api_service.services.submission import KeyTaken, Outcome, WalletDeps, existing_key, submit_and_wait
from api_service.validation import PageQuery, dump
from api_service.wire import sat
from shared import bolt11, jobs, ledger
from shared.db.models import IdempotencyKey, Invoice, Payment
from shared.db.queries import wallet as queries
from shared.errors import (
    AlreadyPaid,
    Conflict,
    Forbidden,
    InvoiceExpired,
    NotFound,
    PaymentInProgress,
    Unprocessable,
    ValidationError,
)
from shared.ledger import MSAT_PER_SAT

PAYMENT_FINAL_STATES = frozenset({"succeeded", "failed"})
FEE_LIMIT_MAX_PPM = 100_000  # 10 %
FEE_LIMIT_MAX_BASE_SAT = 100


def max_fee_limit_sat(amount_msat: int) -> int:
    return -(-amount_msat * FEE_LIMIT_MAX_PPM // (1_000_000 * MSAT_PER_SAT)) + FEE_LIMIT_MAX_BASE_SAT


def _payment_fields(payment: Any) -> dict[str, Any]:
    """PaymentOut's fields of a payment model or row (the same attribute names)."""
    return dict(
        id=payment.id,
        user_id=payment.user_id,
        status=payment.state,
        amount_sat=sat(payment.amount_msat),
        amount_msat=payment.amount_msat,
        fee_sat=sat(payment.fee_msat),
        fee_msat=payment.fee_msat,
        fee_limit_sat=sat(payment.fee_limit_msat),
        preimage=payment.preimage.hex() if payment.state == "succeeded" and payment.preimage else None,
        failure_reason=payment.failure_reason,
        payment_hash=payment.payment_hash.hex(),
        payment_request=payment.payment_request,
        destination=payment.destination,
        memo=payment.memo,
        internal=payment.internal,
        from_treasury=payment.from_treasury,
        created_at=payment.created_at,
        completed_at=payment.completed_at,
        webhook_url=payment.webhook_url,
    )


def payment_out(payment: Payment) -> dict[str, Any]:
    return dump(PaymentOut(**_payment_fields(payment)))


def in_flight_out(row: Any) -> dict[str, Any]:
    return dump(
        InFlightPaymentOut(
            **_payment_fields(row),
            username=row.username,
            age_s=int(row.age_s),
            attempts=row.attempts,
            sent_at=row.sent_at,
            updated_at=row.updated_at,
        )
    )


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(message, details=[{"field": field, "message": message}])


def decode_request(deps: WalletDeps, body: CreatePaymentBody) -> tuple[bolt11.DecodedPaymentRequest, int]:
    """The decoded request and the amount to pay in msat, or a 400/422 saying what is wrong."""
    try:
        decoded = bolt11.decode(body.payment_request)
    except bolt11.InvalidPaymentRequest as exc:
        raise _invalid("paymentRequest", f"invalid payment request: {exc}") from None
    network = deps.settings.lnd_network
    if decoded.network != network:
        raise _invalid("paymentRequest", f"the invoice is for {decoded.network}, this node runs on {network}")
    if decoded.amount_msat is None:
        if body.amount_sat is None:
            raise _invalid("amountSat", "amountSat is required for an invoice without an amount")
        amount_msat = body.amount_sat * MSAT_PER_SAT
    else:
        if body.amount_sat is not None:
            raise _invalid("amountSat", "amountSat must not be given: the invoice has an amount")
        amount_msat = decoded.amount_msat
    max_msat = deps.settings.max_payment_sat * MSAT_PER_SAT
    if amount_msat <= 0:
        raise _invalid("amountSat", "the amount must be positive")
    if amount_msat > max_msat:
        raise _invalid("amountSat", f"the amount must be at most {deps.settings.max_payment_sat} sat")
    if decoded.is_expired():
        raise InvoiceExpired()
    if body.fee_limit_sat is not None and body.fee_limit_sat > max_fee_limit_sat(amount_msat):
        raise _invalid(
            "feeLimitSat", f"feeLimitSat must be at most {max_fee_limit_sat(amount_msat)} for this amount"
        )
    return decoded, amount_msat


def _refuse_existing(payment: Payment) -> Exception:
    if payment.state == "succeeded":
        return AlreadyPaid()
    return PaymentInProgress()


def _internal_target(user: CurrentUser, from_treasury: bool, invoice: Invoice | None) -> Invoice | None:
    """Our own invoice to settle inside Postgres, None for an external payment, or an error."""
    if invoice is None:
        return None
    if invoice.user_id == user.id and not from_treasury:
        raise Conflict("You cannot pay your own invoice")
    if invoice.state == "settled":
        raise AlreadyPaid()
    if invoice.state in ("expired", "canceled"):
        raise InvoiceExpired()
    if invoice.state != "open":
        raise Unprocessable("This invoice cannot be paid")
    return invoice


async def create_payment(
    deps: WalletDeps,
    user: CurrentUser,
    body: CreatePaymentBody,
    idem: idempotency.IdempotencyRequest | None,
) -> Outcome:
    if body.from_treasury and not user.is_admin:
        raise Forbidden("Only administrators may pay from the treasury")
    if idem is not None and (previous := await idempotency.find(deps.sessions, user.id, idem)) is not None:
        return await _replay_payment(deps, previous)
    decoded, amount_msat = decode_request(deps, body)
    async with deps.sessions() as session:
        active = await queries.get_active_payment_by_hash(session, decoded.payment_hash)
        invoice = await queries.get_invoice_by_hash(session, decoded.payment_hash)
    if active is not None:
        return await _replay_or_refuse(deps, user, idem, active)
    target = _internal_target(user, body.from_treasury, invoice)
    if target is not None and (
        (target.payment_request or "").lower() != decoded.payment_request or target.amount_msat != amount_msat
    ):
        # Our payment hash inside a request we did not issue (another payee, another amount): never
        # settle our user's invoice on the strength of it, and it cannot be paid outside either.
        raise Unprocessable("This payment request reuses the payment hash of another invoice")
    if target is not None:
        fee_limit_msat = 0
    elif body.fee_limit_sat is not None:
        fee_limit_msat = body.fee_limit_sat * MSAT_PER_SAT
    else:
        fee_limit_msat = ledger.fee_reserve_msat(
            amount_msat, ppm=deps.settings.fee_reserve_ppm, min_sat=deps.settings.fee_reserve_min_sat
        )
    payment_id = uuid.uuid4()
    try:
        async with deps.sessions() as session, session.begin():
            if idem is not None and not await idempotency.claim(session, user.id, idem, payment_id):
                raise KeyTaken()
            if body.from_treasury:
                account_id = await ledger.system_account_id(session, "treasury")
            else:
                account_id = await ledger.user_account_id(session, user.id)
            hold_msat = amount_msat + fee_limit_msat
            # Guarded UPDATE + CHECK: the available balance of the user's account, or of the
            # treasury, can never go below zero (422 INSUFFICIENT_BALANCE).
            await ledger.place_hold(session, account_id, hold_msat)
            await queries.insert_payment(
                session,
                id=payment_id,
                user_id=user.id,
                account_id=account_id,
                from_treasury=body.from_treasury,
                internal=target is not None,
                state="pending",
                payment_hash=decoded.payment_hash,
                payment_request=decoded.payment_request,
                destination=decoded.payee,
                memo=(decoded.description or "").replace("\x00", ""),
                amount_msat=amount_msat,
                fee_limit_msat=fee_limit_msat,
                hold_msat=hold_msat,
                internal_invoice_id=target.id if target is not None else None,
                webhook_url=body.webhook_url,
            )
    except KeyTaken:
        return await _replay_payment(deps, await existing_key(deps, user, idem))
    except IntegrityError as exc:
        if not queries.is_active_payment_conflict(exc):
            raise
        async with deps.sessions() as session:
            active = await queries.get_active_payment_by_hash(session, decoded.payment_hash)
        if active is None:
            raise PaymentInProgress("Retry this payment") from None
        return await _replay_or_refuse(deps, user, idem, active)
    await submit_and_wait(
        deps,
        function=jobs.PAY_INVOICE,
        job_id=jobs.pay_invoice_job_id(payment_id),
        row_id=payment_id,
        wait_s=deps.settings.payment_wait_s,
        read_state=queries.get_payment_state,
        final_states=PAYMENT_FINAL_STATES,
    )
    outcome = await _payment_outcome(deps, payment_id)
    await idempotency.remember(deps.sessions, user.id, idem, outcome.status, outcome.data)
    return outcome


async def _replay_or_refuse(
    deps: WalletDeps, user: CurrentUser, idem: idempotency.IdempotencyRequest | None, active: Payment
) -> Outcome:
    """An active payment of this hash exists. If it is the one a concurrent request with the same
    Idempotency-Key just committed (its lookup ran before that commit), answer as that request did;
    otherwise refuse (409)."""
    if idem is not None and (previous := await idempotency.find(deps.sessions, user.id, idem)) is not None:
        return await _replay_payment(deps, previous)
    raise _refuse_existing(active)


async def _payment_outcome(deps: WalletDeps, payment_id: uuid.UUID) -> Outcome:
    async with deps.reads.connect() as connection:
        payment = await queries.read_payment(connection, payment_id)
    if payment is None:
        raise NotFound("Payment not found")
    if payment.state in PAYMENT_FINAL_STATES:
        return Outcome(200, payment_out(payment))
    return Outcome(202, payment_out(payment), f"/api/v1/payments/{payment.id}")


async def _replay_payment(deps: WalletDeps, previous: IdempotencyKey) -> Outcome:
    """The first answer again; a 202 (not final then) is never replayed stale: the row's current
    state answers instead, as for a repeat that arrives while the first request still runs."""
    if previous.response_status is not None and previous.response_status != 202:
        return Outcome(previous.response_status, previous.response_body)
    return await _payment_outcome(deps, previous.resource_id)


async def get_payment(deps: WalletDeps, user: CurrentUser, ident: str) -> dict[str, Any]:
    """The caller's payment (admins: any payment); another user's is reported as not found."""
    payment_id = parse_uuid(ident, "Payment")
    async with deps.sessions() as session:
        payment = await queries.get_payment(session, payment_id)
    if payment is None or not (user.is_admin or payment.user_id == user.id):
        raise NotFound("Payment not found")
    return payment_out(payment)


async def list_in_flight(deps: WalletDeps, query: PageQuery) -> tuple[list[dict[str, Any]], int]:
    """Every user's payments not final yet, oldest first: the ones an operator looks at when money
    seems stuck (the worker's ``..._oldest_in_flight_payment_seconds`` gauge measures the first)."""
    async with deps.reads.connect() as connection:
        rows, total = await queries.list_unfinished_payments(
            connection, limit=query.page_size, offset=query.offset
        )
    return [in_flight_out(row) for row in rows], total
