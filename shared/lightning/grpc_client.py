"""GrpcLightningClient: the LightningClient protocol over LND's gRPC API (grpc.aio, TLS + macaroon).

Every unary call carries a deadline (``timeout_s``); streams (SubscribeInvoices, SendPaymentV2,
TrackPaymentV2, SubscribeSingleInvoice) have none because they legitimately stay open. Every gRPC
failure is raised as a LightningError subclass (mapping in ``grpc_errors``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from shared.lightning import grpc_convert as convert
from shared.lightning.grpc_channel import (
    DEFAULT_KEEPALIVE_TIME_S,
    DEFAULT_KEEPALIVE_TIMEOUT_S,
    macaroon_metadata,
    open_channel,
    read_macaroon_hex,
)
from shared.lightning.grpc_errors import map_rpc_error
from shared.lightning.protos import invoices_pb2 as inv
from shared.lightning.protos import invoices_pb2_grpc as inv_grpc
from shared.lightning.protos import lightning_pb2 as ln
from shared.lightning.protos import lightning_pb2_grpc as ln_grpc
from shared.lightning.protos import router_pb2 as router
from shared.lightning.protos import router_pb2_grpc as router_grpc
from shared.lightning.types import (
    AddedInvoice,
    ChannelBalance,
    DecodedPayReq,
    Invoice,
    NodeInfo,
    PaymentUpdate,
    WalletBalance,
)

T = TypeVar("T")


class GrpcLightningClient:
    """LightningClient over gRPC. ``host`` is "ip:port"; the channel opens lazily in the running loop."""

    def __init__(
        self,
        host: str,
        tls_cert_pem: bytes,
        macaroon_hex: str,
        timeout_s: float = 10.0,
        *,
        keepalive_time_s: float = DEFAULT_KEEPALIVE_TIME_S,
        keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.timeout_s = timeout_s
        self._keepalive = {"keepalive_time_s": keepalive_time_s, "keepalive_timeout_s": keepalive_timeout_s}
        self._tls_cert_pem = tls_cert_pem
        self.call_metadata = macaroon_metadata(macaroon_hex)  # sent with every call on the channel
        self._channel: grpc.aio.Channel | None = None
        self._ln: ln_grpc.LightningStub | None = None
        self._router: router_grpc.RouterStub | None = None
        self._invoices: inv_grpc.InvoicesStub | None = None

    @classmethod
    def from_paths(
        cls,
        host: str,
        cert_path: str | os.PathLike[str],
        macaroon_path_or_hex: str | os.PathLike[str],
        timeout_s: float = 10.0,
        **keepalive: float,
    ) -> GrpcLightningClient:
        """Build from LND's files: tls.cert path and admin.macaroon path (or the macaroon's hex)."""
        cert = Path(cert_path).read_bytes()
        return cls(host, cert, read_macaroon_hex(macaroon_path_or_hex), timeout_s, **keepalive)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying channel (opened on first use), for callers adding their own stubs: TLS only,
        so their calls pass ``metadata=client.call_metadata`` (the macaroon)."""
        if self._channel is None:
            self._channel = open_channel(self.host, self._tls_cert_pem, None, **self._keepalive)
            self._ln = ln_grpc.LightningStub(self._channel)
            self._router = router_grpc.RouterStub(self._channel)
            self._invoices = inv_grpc.InvoicesStub(self._channel)
        return self._channel

    @property
    def lightning_stub(self) -> ln_grpc.LightningStub:
        _ = self.channel
        assert self._ln is not None
        return self._ln

    @property
    def router_stub(self) -> router_grpc.RouterStub:
        _ = self.channel
        assert self._router is not None
        return self._router

    @property
    def invoices_stub(self) -> inv_grpc.InvoicesStub:
        _ = self.channel
        assert self._invoices is not None
        return self._invoices

    async def _unary(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await method(request, timeout=self.timeout_s, metadata=self.call_metadata)
        except Exception as exc:  # every failure leaves as a LightningError
            raise map_rpc_error(exc) from exc

    async def _stream(self, call: Any) -> AsyncIterator[Any]:
        try:
            async for msg in call:
                yield msg
        except Exception as exc:
            raise map_rpc_error(exc) from exc
        finally:
            call.cancel()

    async def get_info(self) -> NodeInfo:
        return convert.node_info(await self._unary(self.lightning_stub.GetInfo, ln.GetInfoRequest()))

    async def add_invoice(
        self,
        *,
        value_msat: int,
        memo: str,
        expiry_s: int,
        preimage: bytes,
        description_hash: bytes | None = None,
    ) -> AddedInvoice:
        req = ln.Invoice(
            memo=memo,
            value_msat=value_msat,
            expiry=expiry_s,
            r_preimage=preimage,
            description_hash=description_hash or b"",
        )
        resp = await self._unary(self.lightning_stub.AddInvoice, req)
        return AddedInvoice(
            payment_hash=bytes(resp.r_hash),
            payment_request=resp.payment_request,
            add_index=resp.add_index,
            payment_addr=bytes(resp.payment_addr),
        )

    async def add_hold_invoice(
        self, *, payment_hash: bytes, value_msat: int, memo: str, expiry_s: int
    ) -> AddedInvoice:
        """invoicesrpc.AddHoldInvoice (not part of the LightningClient protocol)."""
        req = inv.AddHoldInvoiceRequest(hash=payment_hash, value_msat=value_msat, memo=memo, expiry=expiry_s)
        resp = await self._unary(self.invoices_stub.AddHoldInvoice, req)
        return AddedInvoice(payment_hash, resp.payment_request, resp.add_index, bytes(resp.payment_addr))

    async def settle_invoice(self, preimage: bytes) -> None:
        """invoicesrpc.SettleInvoice for a hold invoice (not part of the protocol)."""
        await self._unary(self.invoices_stub.SettleInvoice, inv.SettleInvoiceMsg(preimage=preimage))

    async def lookup_invoice(self, payment_hash: bytes) -> Invoice:
        msg = await self._unary(self.lightning_stub.LookupInvoice, ln.PaymentHash(r_hash=payment_hash))
        return convert.invoice(msg)

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        await self._unary(self.invoices_stub.CancelInvoice, inv.CancelInvoiceMsg(payment_hash=payment_hash))

    async def subscribe_invoices(
        self, *, add_index: int = 0, settle_index: int = 0
    ) -> AsyncIterator[Invoice]:
        call = self.lightning_stub.SubscribeInvoices(
            ln.InvoiceSubscription(add_index=add_index, settle_index=settle_index),
            metadata=self.call_metadata,
        )
        async for msg in self._stream(call):
            yield convert.invoice(msg)

    async def subscribe_single_invoice(self, payment_hash: bytes) -> AsyncIterator[Invoice]:
        """invoicesrpc.SubscribeSingleInvoice (not part of the protocol)."""
        call = self.invoices_stub.SubscribeSingleInvoice(
            inv.SubscribeSingleInvoiceRequest(r_hash=payment_hash), metadata=self.call_metadata
        )
        async for msg in self._stream(call):
            yield convert.invoice(msg)

    async def decode_pay_req(self, payment_request: str) -> DecodedPayReq:
        msg = await self._unary(self.lightning_stub.DecodePayReq, ln.PayReqString(pay_req=payment_request))
        return convert.decoded_pay_req(msg)

    async def send_payment(
        self,
        *,
        payment_request: str,
        fee_limit_msat: int,
        timeout_s: int,
        amount_msat: int | None = None,
        no_inflight_updates: bool = False,
    ) -> AsyncIterator[PaymentUpdate]:
        req = router.SendPaymentRequest(
            payment_request=payment_request,
            fee_limit_msat=fee_limit_msat,
            timeout_seconds=timeout_s,
            amt_msat=amount_msat or 0,
            no_inflight_updates=no_inflight_updates,
        )
        async for msg in self._stream(self.router_stub.SendPaymentV2(req, metadata=self.call_metadata)):
            yield convert.payment_update(msg)

    async def track_payment(self, payment_hash: bytes) -> AsyncIterator[PaymentUpdate]:
        call = self.router_stub.TrackPaymentV2(
            router.TrackPaymentRequest(payment_hash=payment_hash), metadata=self.call_metadata
        )
        async for msg in self._stream(call):
            yield convert.payment_update(msg)

    async def list_invoices(
        self, *, index_offset: int = 0, max_invoices: int = 1000, creation_date_start: int = 0
    ) -> list[Invoice]:
        req = ln.ListInvoiceRequest(
            index_offset=index_offset, num_max_invoices=max_invoices, creation_date_start=creation_date_start
        )
        msg = await self._unary(self.lightning_stub.ListInvoices, req)
        return [convert.invoice(item) for item in msg.invoices]

    async def list_payments(
        self,
        *,
        index_offset: int = 0,
        max_payments: int = 1000,
        include_incomplete: bool = True,
        creation_date_start: int = 0,
    ) -> list[PaymentUpdate]:
        req = ln.ListPaymentsRequest(
            index_offset=index_offset,
            max_payments=max_payments,
            include_incomplete=include_incomplete,
            creation_date_start=creation_date_start,
        )
        msg = await self._unary(self.lightning_stub.ListPayments, req)
        return [convert.payment_update(item) for item in msg.payments]

    async def channel_balance(self) -> ChannelBalance:
        msg = await self._unary(self.lightning_stub.ChannelBalance, ln.ChannelBalanceRequest())
        return convert.channel_balance(msg)

    async def wallet_balance(self) -> WalletBalance:
        msg = await self._unary(self.lightning_stub.WalletBalance, ln.WalletBalanceRequest())
        return convert.wallet_balance(msg)

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()
