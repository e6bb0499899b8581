"""A LightningClient that builds the real client on first use, and verifies the node before use.

The worker must start (and report healthy to arq) before the node is reachable or has even
written its TLS certificate: a missing certificate or macaroon becomes LightningUnavailable on the
call that needs it, which the jobs retry, instead of a crash at start-up.

``verify`` (the node identity check, node_identity.py) runs once, before the first call is let
through: until it has passed, nothing reaches the node, so no job can act on the wrong node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from shared.errors import LightningUnavailable
from shared.lightning.interface import LightningClient
from shared.lightning.types import (
    AddedInvoice,
    ChannelBalance,
    DecodedPayReq,
    Invoice,
    NodeInfo,
    PaymentUpdate,
    WalletBalance,
)

log = logging.getLogger(__name__)


class DeferredLightningClient:
    def __init__(
        self,
        build: Callable[[], LightningClient],
        *,
        verify: Callable[[LightningClient], Awaitable[None]] | None = None,
    ) -> None:
        self._build = build
        self._client: LightningClient | None = None
        self._verify = verify
        self._verified = verify is None
        self._verifying = asyncio.Lock()

    def _get(self) -> LightningClient:
        if self._client is None:
            try:
                self._client = self._build()
            except OSError as exc:  # cert or macaroon file not there (yet)
                raise LightningUnavailable(f"LND credentials not readable: {exc}") from exc
        return self._client

    async def _ready(self) -> LightningClient:
        client = self._get()
        if not self._verified:
            async with self._verifying:
                if not self._verified:
                    assert self._verify is not None
                    await self._verify(client)
                    self._verified = True
        return client

    async def get_info(self) -> NodeInfo:
        return await (await self._ready()).get_info()

    async def add_invoice(
        self,
        *,
        value_msat: int,
        memo: str,
        expiry_s: int,
        preimage: bytes,
        description_hash: bytes | None = None,
    ) -> AddedInvoice:
        return await (await self._ready()).add_invoice(
            value_msat=value_msat,
            memo=memo,
            expiry_s=expiry_s,
            preimage=preimage,
            description_hash=description_hash,
        )

    async def lookup_invoice(self, payment_hash: bytes) -> Invoice:
        return await (await self._ready()).lookup_invoice(payment_hash)

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        await (await self._ready()).cancel_invoice(payment_hash)

    async def subscribe_invoices(
        self, *, add_index: int = 0, settle_index: int = 0
    ) -> AsyncIterator[Invoice]:
        async for item in _relay(
            (await self._ready()).subscribe_invoices(add_index=add_index, settle_index=settle_index)
        ):
            yield item

    async def decode_pay_req(self, payment_request: str) -> DecodedPayReq:
        return await (await self._ready()).decode_pay_req(payment_request)

    async def send_payment(self, **kwargs: Any) -> AsyncIterator[PaymentUpdate]:
        async for item in _relay((await self._ready()).send_payment(**kwargs)):
            yield item

    async def track_payment(self, payment_hash: bytes) -> AsyncIterator[PaymentUpdate]:
        async for item in _relay((await self._ready()).track_payment(payment_hash)):
            yield item

    async def list_invoices(self, **kwargs: Any) -> list[Invoice]:
        return await (await self._ready()).list_invoices(**kwargs)

    async def list_payments(self, **kwargs: Any) -> list[PaymentUpdate]:
        return await (await self._ready()).list_payments(**kwargs)

    async def channel_balance(self) -> ChannelBalance:
        return await (await self._ready()).channel_balance()

    async def wallet_balance(self) -> WalletBalance:
        return await (await self._ready()).wallet_balance()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


async def _relay(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Re-yield a stream, closing it when the consumer stops early."""
    try:
        async for item in stream:
            yield item
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
