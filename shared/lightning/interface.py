"""The narrow Lightning interface the worker depends on.

The gRPC client (`shared.lightning.grpc_client.GrpcLightningClient`) implements it against LND or
lnd_simnet; unit tests may use an in-process fake. Every method raises only `shared.errors`
LightningError subclasses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from shared.lightning.types import (
    AddedInvoice,
    ChannelBalance,
    DecodedPayReq,
    Invoice,
    NodeInfo,
    PaymentUpdate,
    WalletBalance,
)


class LightningClient(Protocol):
    async def get_info(self) -> NodeInfo:
        """The node's identity, network and sync state."""

    async def add_invoice(
        self,
        *,
        value_msat: int,
        memo: str,
        expiry_s: int,
        preimage: bytes,
        description_hash: bytes | None = None,
    ) -> AddedInvoice:
        """Create an invoice for the given preimage (raises InvoiceAlreadyExists if its hash is known).

        With ``description_hash`` (32 bytes, LNURL-pay's sha256 of the metadata) the payment request
        carries that hash (BOLT11 ``h``) instead of the memo as its description."""

    async def lookup_invoice(self, payment_hash: bytes) -> Invoice:
        """One invoice by hash (raises LightningNotFound)."""

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        """Cancel an open invoice so it can no longer be paid (idempotent)."""

    def subscribe_invoices(self, *, add_index: int = 0, settle_index: int = 0) -> AsyncIterator[Invoice]:
        """SubscribeInvoices: replay after the given indexes, then live adds and settles."""

    async def decode_pay_req(self, payment_request: str) -> DecodedPayReq:
        """Decode a BOLT11 payment request as the node sees it."""

    def send_payment(
        self,
        *,
        payment_request: str,
        fee_limit_msat: int,
        timeout_s: int,
        amount_msat: int | None = None,
        no_inflight_updates: bool = False,
    ) -> AsyncIterator[PaymentUpdate]:
        """SendPaymentV2: stream of updates ending with SUCCEEDED or FAILED.

        Raises PaymentAlreadySucceeded / PaymentInFlight if the node has seen the hash,
        LightningRequestError for requests it refuses outright."""

    def track_payment(self, payment_hash: bytes) -> AsyncIterator[PaymentUpdate]:
        """TrackPaymentV2: current state first, then updates (raises LightningNotFound if never sent)."""

    async def list_invoices(
        self, *, index_offset: int = 0, max_invoices: int = 1000, creation_date_start: int = 0
    ) -> list[Invoice]:
        """ListInvoices: up to ``max_invoices`` after ``add_index`` ``index_offset``, oldest first."""

    async def list_payments(
        self,
        *,
        index_offset: int = 0,
        max_payments: int = 1000,
        include_incomplete: bool = True,
        creation_date_start: int = 0,
    ) -> list[PaymentUpdate]:
        """ListPayments: up to ``max_payments`` after ``payment_index`` ``index_offset``, oldest first."""

    async def channel_balance(self) -> ChannelBalance:
        """Sum of the node's channel balances."""

    async def wallet_balance(self) -> WalletBalance:
        """On-chain wallet balance."""

    async def close(self) -> None:
        """Close the channel to the node."""
