"""Bob, the outside world: makes invoices for us to pay and pays ours, over gRPC to lnd_simnet."""

from __future__ import annotations

import asyncio
import os

from shared.lightning.grpc_client import GrpcLightningClient
from shared.lightning.types import PaymentStatus, PaymentUpdate

FEE_LIMIT_MSAT = 100_000
PAY_TIMEOUT_S = 30


async def make_invoices(
    bob: GrpcLightningClient, count: int, amount_sat: int, concurrency: int = 16, memo: str = "bench"
) -> list[str]:
    """``count`` fresh BOLT11 invoices issued by bob (made before a cell, outside its timing)."""
    out: list[str] = []
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            added = await bob.add_invoice(
                value_msat=amount_sat * 1000, memo=memo, expiry_s=3600, preimage=os.urandom(32)
            )
            out.append(added.payment_request)

    await asyncio.gather(*(one() for _ in range(count)))
    return out


async def pay(client: GrpcLightningClient, payment_request: str) -> PaymentUpdate:
    """Pay and wait for the final update; raises RuntimeError unless it succeeded."""
    final: PaymentUpdate | None = None
    async for update in client.send_payment(
        payment_request=payment_request,
        fee_limit_msat=FEE_LIMIT_MSAT,
        timeout_s=PAY_TIMEOUT_S,
        no_inflight_updates=True,
    ):
        final = update
        if update.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED):
            break
    if final is None or final.status != PaymentStatus.SUCCEEDED:
        raise RuntimeError(f"payment did not succeed: {final}")
    return final
