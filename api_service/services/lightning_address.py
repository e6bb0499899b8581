"""Lightning Addresses (LUD-16) over LNURL-pay (LUD-06, comments LUD-12): who ``name@host`` is, the
metadata the payer's wallet hashes, and the invoice it gets.

The address of a user is their username in lower case at the host of PUBLIC_URL. The invoice commits
to sha256 of the exact metadata string served with the pay request (BOLT11 ``h``), which the payer's
wallet checks; it is made through ``invoices.issue_invoice`` like any other and credited to the user
when paid.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.services.invoices import InvoiceRequest, issue_invoice
from api_service.services.submission import WalletDeps
from shared.config import Settings
from shared.db.models import User
from shared.db.queries import users as user_queries
from shared.errors import NotFound, ServiceUnavailable, ValidationError
from shared.ledger import MSAT_PER_SAT

MIN_SENDABLE_MSAT = 1000
COMMENT_MAX_CHARS = 255
INVOICE_EXPIRY_S = 3600
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class PayRequest:
    callback: str
    min_sendable_msat: int
    max_sendable_msat: int
    metadata: str
    comment_allowed: int


def address_host(settings: Settings) -> str:
    """The domain part of every address: host[:port] of PUBLIC_URL."""
    return urlsplit(settings.public_base_url).netloc


def lightning_address(settings: Settings, username: str) -> str:
    return f"{username.lower()}@{address_host(settings)}"


def metadata(settings: Settings, username: str) -> str:
    """LUD-06 metadata: a JSON array serialised once; the invoice's description hash is its sha256."""
    address = lightning_address(settings, username)
    return json.dumps([["text/plain", f"Payment to {address}"], ["text/identifier", address]])


def description_hash(metadata_text: str) -> bytes:
    return hashlib.sha256(metadata_text.encode("utf-8")).digest()


def callback_url(settings: Settings, username: str) -> str:
    return f"{settings.public_base_url}/lnurlp/{username.lower()}/callback"


async def find_recipient(sessions: async_sessionmaker[AsyncSession], username: str) -> User:
    """The active user behind an address; NotFound (the same for unknown and inactive) otherwise."""
    if _USERNAME.match(username):
        async with sessions() as session:
            user = await user_queries.get_user_by_username(session, username)
        if user is not None and user.is_active:
            return user
    raise NotFound("No such Lightning Address")


async def pay_request(deps: WalletDeps, username: str) -> PayRequest:
    user = await find_recipient(deps.sessions, username)
    return PayRequest(
        callback=callback_url(deps.settings, user.username),
        min_sendable_msat=MIN_SENDABLE_MSAT,
        max_sendable_msat=deps.settings.max_invoice_sat * MSAT_PER_SAT,
        metadata=metadata(deps.settings, user.username),
        comment_allowed=COMMENT_MAX_CHARS,
    )


async def request_invoice(deps: WalletDeps, username: str, *, amount_msat: int, comment: str | None) -> str:
    """A payment request for exactly ``amount_msat`` to the user, committing to the metadata."""
    user = await find_recipient(deps.sessions, username)
    max_msat = deps.settings.max_invoice_sat * MSAT_PER_SAT
    if not MIN_SENDABLE_MSAT <= amount_msat <= max_msat:
        raise ValidationError(f"amount must be between {MIN_SENDABLE_MSAT} and {max_msat} millisatoshis")
    if comment is not None and len(comment) > COMMENT_MAX_CHARS:
        raise ValidationError(f"comment must be at most {COMMENT_MAX_CHARS} characters")
    if comment is not None and "\x00" in comment:
        raise ValidationError("comment must not contain NUL characters")
    text = metadata(deps.settings, user.username)
    request = InvoiceRequest(
        amount_msat=amount_msat,
        memo=comment or f"Payment to {lightning_address(deps.settings, user.username)}",
        expiry_s=INVOICE_EXPIRY_S,
        description_hash=description_hash(text),
    )
    invoice = (await issue_invoice(deps, user.id, request)).row
    if invoice.state != "open":
        raise ServiceUnavailable("The invoice could not be made in time; try again")
    return invoice.payment_request
