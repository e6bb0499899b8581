"""Incoming invoices and the activity list.

A create inserts the row as ``pending`` and commits, then goes through the worker with the shared
submit-and-wait flow (``services/submission.py``) and answers with the row as Postgres has it.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from api_service import wire
from api_service.schemas.wallet import (
    ActivityQuery,
    BalanceOut,
    CreateInvoiceBody,
)
from api_service.security import CurrentUser
from api_service.services import idempotency
from api_service.services.submission import KeyTaken, Outcome, WalletDeps, existing_key, submit_and_wait
from api_service.validation import dump
from api_service.wire import sat
from shared import jobs, ledger
from shared.db.engine import driver_connection
from shared.db.models import IdempotencyKey, Payment
from shared.db.queries import wallet as queries
from shared.errors import Forbidden, NotFound, ValidationError
from shared.ledger import MSAT_PER_SAT

log = logging.getLogger("api.wallet")

INVOICE_FINAL_STATES = frozenset({"open", "settled", "expired", "canceled", "failed"})
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HASH = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class InvoiceRequest:
    """What an incoming invoice is made of, whichever surface asked for it (/api/v1, LndHub, LNURL)."""

    amount_msat: int
    memo: str
    expiry_s: int
    webhook_url: str | None = None
    description_hash: bytes | None = None  # LNURL-pay: sha256 of the metadata, sent to LND instead of memo
    for_treasury: bool = False  # an admin's invoice whose settlement credits the treasury


def parse_uuid(text: str, what: str = "Invoice") -> uuid.UUID:
    """A row id path segment; a malformed one is 404 like an unknown one (as ``validation.path_uuid``)."""
    if not _UUID.match(text):
        raise NotFound(f"{what} not found")
    return uuid.UUID(text)


# ---- serialisation ----------------------------------------------------------------------------


def invoice_out(invoice: Any) -> dict[str, Any]:
    """An invoice (ORM object or row) as ``InvoiceOut``."""
    return wire.invoice_full(wire.Attrs(invoice))


def activity_out(row: Any) -> dict[str, Any]:
    """A row of the activity union, or a Payment, as one list item (``ActivityItemOut``)."""
    if isinstance(row, Payment):
        return wire.payment_item(wire.Attrs(row))
    return wire.activity_item(wire.Attrs(row))


# ---- invoices ---------------------------------------------------------------------------------


async def create_invoice(
    deps: WalletDeps,
    user: CurrentUser,
    body: CreateInvoiceBody,
    idem: idempotency.IdempotencyRequest | None,
) -> Outcome:
    if body.for_treasury and not user.is_admin:
        raise Forbidden("Only administrators may create invoices for the treasury")
    request = InvoiceRequest(
        amount_msat=body.amount_sat * MSAT_PER_SAT,
        memo=body.memo,
        expiry_s=body.expiry_seconds,
        webhook_url=body.webhook_url,
        for_treasury=body.for_treasury,
    )
    return await issue_invoice(deps, user.id, request, idem)


async def issue_invoice(
    deps: WalletDeps,
    user_id: uuid.UUID,
    request: InvoiceRequest,
    idem: idempotency.IdempotencyRequest | None = None,
) -> Outcome:
    """Make an incoming invoice for ``user_id`` through the worker (the one path of every surface):
    the pending row, the job, the bounded wait, and the row as Postgres has it (201, or 202 pending)."""
    if request.amount_msat > deps.settings.max_invoice_sat * MSAT_PER_SAT:
        raise ValidationError(
            f"amountSat must be at most {deps.settings.max_invoice_sat}",
            details=[{"field": "amountSat", "message": "too large"}],
        )
    if idem is not None and (previous := await idempotency.find(deps.sessions, user_id, idem)) is not None:
        return await _replay_invoice(deps, previous)
    invoice_id = uuid.uuid4()
    row = {
        "invoice_id": invoice_id,
        "user_id": user_id,
        "amount_msat": request.amount_msat,
        "memo": request.memo,
        "expiry_s": request.expiry_s,
        "webhook_url": request.webhook_url,
        "description_hash": request.description_hash,
        "for_treasury": request.for_treasury,
    }
    if idem is None:  # the row alone: one statement, its own transaction
        async with driver_connection(deps.reads) as connection:
            await queries.insert_invoice(connection, **row)
    else:
        try:
            async with deps.sessions() as session, session.begin():
                if not await idempotency.claim(session, user_id, idem, invoice_id):
                    raise KeyTaken()
                await queries.insert_invoice(session, **row)
        except KeyTaken:
            return await _replay_invoice(deps, await existing_key(deps, user_id, idem))
    await submit_and_wait(
        deps,
        function=jobs.CREATE_INVOICE,
        job_id=jobs.create_invoice_job_id(invoice_id),
        row_id=invoice_id,
        wait_s=deps.settings.invoice_wait_s,
        read_state=queries.get_invoice_state,
        final_states=INVOICE_FINAL_STATES,
    )
    outcome = await _invoice_outcome(deps, invoice_id)
    await idempotency.remember(deps.sessions, user_id, idem, outcome.status, outcome.data)
    return outcome


async def _invoice_outcome(deps: WalletDeps, invoice_id: uuid.UUID) -> Outcome:
    async with driver_connection(deps.reads) as connection:
        record = await queries.fetch_invoice(connection, invoice_id)
    if record is None:
        raise NotFound("Invoice not found")
    invoice = wire.Fields(record)
    if invoice.state == "pending":
        return Outcome(202, wire.invoice_full(record), f"/api/v1/invoices/{invoice.id}", row=invoice)
    return Outcome(201, wire.invoice_full(record), row=invoice)


async def _replay_invoice(deps: WalletDeps, previous: IdempotencyKey) -> Outcome:
    """The first answer again; a stored 202 is never replayed stale (the row's current state answers)."""
    if previous.response_status is not None and previous.response_status != 202:
        return Outcome(previous.response_status, previous.response_body)
    return await _invoice_outcome(deps, previous.resource_id)


# ---- reads ------------------------------------------------------------------------------------


async def get_balance(deps: WalletDeps, user: CurrentUser) -> dict[str, Any]:
    async with deps.reads.connect() as connection:
        balance = await ledger.get_user_balance(connection, user.id)
    # Display values in sat are floor(msat / 1000): never show more than can be spent.
    return dump(
        BalanceOut(
            balance_sat=sat(balance.balance_msat),
            held_sat=sat(balance.held_msat),
            available_sat=sat(balance.available_msat),
            balance_msat=balance.balance_msat,
            held_msat=balance.held_msat,
            available_msat=balance.available_msat,
        )
    )


async def list_activity(deps: WalletDeps, user: CurrentUser, query: ActivityQuery) -> tuple[list[dict], int]:
    if query.all and not user.is_admin:
        raise Forbidden("Only administrators may list every user's invoices")
    filters = queries.ActivityFilter(
        user_id=None if query.all else user.id,
        direction=query.direction,
        state=query.state,
        created_from=query.from_,
        created_to=query.to,
    )
    async with deps.reads.connect() as connection:
        rows, total = await queries.list_activity(
            connection, filters, limit=query.page_size, offset=query.offset
        )
    return [activity_out(row) for row in rows], total


async def list_own_activity(
    deps: WalletDeps, user_id: uuid.UUID, query: ActivityQuery
) -> tuple[Any, list[dict], int]:
    """(the caller's users row, their own activity page, total), read in one statement. The caller
    must be accepted from that row (``security.accept_user``): an inactive one gets no items."""
    filters = queries.ActivityFilter(
        user_id=user_id,
        direction=query.direction,
        state=query.state,
        created_from=query.from_,
        created_to=query.to,
    )
    async with driver_connection(deps.reads) as connection:
        user_row, rows, total = await queries.list_own_activity(
            connection, filters, limit=query.page_size, offset=query.offset
        )
    return user_row, [wire.activity_item(row) for row in rows], total


async def get_invoice_or_payment(deps: WalletDeps, user: CurrentUser, ident: str) -> dict[str, Any]:
    """One incoming invoice or outgoing payment of the caller, by row id or by 64-hex payment hash.
    Another user's row is reported as not found (admins see every row)."""
    owner = None if user.is_admin else user.id
    async with deps.sessions() as session:
        if _HASH.match(ident):
            payment_hash = bytes.fromhex(ident)
            invoice = await queries.get_invoice_by_hash(session, payment_hash)
            if invoice is not None and owner in (None, invoice.user_id):
                return invoice_out(invoice)
            payment = await queries.get_latest_payment_by_hash(session, payment_hash, user_id=owner)
        else:
            row_id = parse_uuid(ident, "Invoice")
            invoice = await queries.get_invoice(session, row_id)
            if invoice is not None and owner in (None, invoice.user_id):
                return invoice_out(invoice)
            payment = await queries.get_payment(session, row_id)
            if payment is not None and owner not in (None, payment.user_id):
                payment = None
    if payment is None:
        raise NotFound("Invoice not found")
    return activity_out(payment)
