"""Reads of a user's own history for wallet-app protocols (LndHub): paid invoices with preimages,
incoming invoices, and whether one of the user's invoices is paid."""

from __future__ import annotations

import re
from typing import Any

from api_service.security import CurrentUser
from api_service.services.submission import WalletDeps
from shared.db.queries import history as queries
from shared.db.queries import wallet as wallet_queries
from shared.errors import NotFound, ValidationError

_HASH = re.compile(r"^[0-9a-fA-F]{64}$")


async def list_payments(deps: WalletDeps, user: CurrentUser, *, limit: int, offset: int) -> list[Any]:
    """Payments that took or hold the caller's money, newest first (succeeded, pending, in flight)."""
    async with deps.reads.connect() as connection:
        return await queries.list_user_payments(connection, user.id, limit=limit, offset=offset)


async def list_invoices(deps: WalletDeps, user: CurrentUser, *, limit: int) -> list[Any]:
    """The caller's newest ``limit`` incoming invoices that have a payment request, newest first."""
    async with deps.reads.connect() as connection:
        return await queries.list_user_invoices(connection, user.id, limit=limit)


async def invoice_is_paid(deps: WalletDeps, user: CurrentUser, payment_hash_hex: str) -> bool:
    """Whether the caller's incoming invoice with this hash is settled; another user's is NotFound."""
    if not _HASH.match(payment_hash_hex):
        raise ValidationError("the payment hash must be 64 hex characters")
    async with deps.sessions() as session:
        invoice = await wallet_queries.get_invoice_by_hash(session, bytes.fromhex(payment_hash_hex))
    if invoice is None or invoice.user_id != user.id:
        raise NotFound("Invoice not found")
    return invoice.state == "settled"
