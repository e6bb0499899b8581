"""The gRPC servicers of one simnet node: lnrpc.Lightning, routerrpc.Router, invoicesrpc.Invoices."""

from __future__ import annotations

import asyncio
import functools
import time

import grpc

from lnd_simnet import bolt11codec, wire
from lnd_simnet.errors import RpcFailure, not_found_invoice
from lnd_simnet.models import ACCEPTED, CANCELED, IN_FLIGHT, OPEN, SETTLED, SUCCEEDED
from lnd_simnet.network import Network
from lnd_simnet.node import Node
from shared.lightning.protos import invoices_pb2 as inv_pb
from shared.lightning.protos import invoices_pb2_grpc as inv_grpc
from shared.lightning.protos import lightning_pb2 as ln
from shared.lightning.protos import lightning_pb2_grpc as ln_grpc
from shared.lightning.protos import router_pb2_grpc as router_grpc

DEFAULT_PAGE = 100
BLOCK_HASH = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"


def unary(fn):
    """Run a synchronous handler; an RpcFailure becomes the gRPC status LND would send."""

    @functools.wraps(fn)
    async def wrapper(self, request, context):
        try:
            return fn(self, request)
        except RpcFailure as exc:
            await context.abort(exc.code, exc.text)

    return wrapper


def _amount_msat(sat: int, msat: int) -> int:
    if sat and msat:
        raise RpcFailure("sat and msat arguments are mutually exclusive")
    return sat * 1000 + msat


class _Base:
    def __init__(self, network: Network, node: Node) -> None:
        self.net = network
        self.node = node


class LightningServicer(_Base, ln_grpc.LightningServicer):
    @unary
    def GetInfo(self, request):
        node = self.node
        return ln.GetInfoResponse(
            version=wire.VERSION,
            commit_hash=wire.COMMIT_HASH,
            identity_pubkey=node.pubkey.hex(),
            alias=node.name,
            color="#3399ff",
            num_active_channels=1,
            num_peers=1,
            block_height=self.net.settings.block_height,
            block_hash=BLOCK_HASH,
            best_header_timestamp=int(time.time()),
            synced_to_chain=True,
            synced_to_graph=True,
            chains=[ln.Chain(chain="bitcoin", network="regtest")],
            uris=[f"{node.pubkey.hex()}@127.0.0.1:9735"],
            features=wire.features((0, 12, 14, 17, 23)),
        )

    @unary
    def AddInvoice(self, request):
        if request.is_amp:
            raise RpcFailure("simnet does not support AMP invoices")
        inv = self.node.add_invoice(
            memo=request.memo,
            value_msat=_amount_msat(request.value, request.value_msat),
            expiry_s=request.expiry,
            preimage=bytes(request.r_preimage) or None,
            description_hash=bytes(request.description_hash) or None,
            cltv_expiry=request.cltv_expiry,
            private=request.private,
        )
        return ln.AddInvoiceResponse(
            r_hash=inv.payment_hash,
            payment_request=inv.payment_request,
            add_index=inv.add_index,
            payment_addr=inv.payment_addr,
        )

    @unary
    def LookupInvoice(self, request):
        payment_hash = bytes(request.r_hash)
        if not payment_hash and request.r_hash_str:
            try:
                payment_hash = bytes.fromhex(request.r_hash_str)
            except ValueError as exc:
                raise RpcFailure(f"unable to decode payment hash: {exc}") from exc
        return wire.invoice(self.node.lookup_invoice(payment_hash))

    @unary
    def ListInvoices(self, request):
        node = self.node
        node.expire_due()
        limit = request.num_max_invoices or DEFAULT_PAGE
        start, end = request.creation_date_start, request.creation_date_end

        def wanted(inv):
            if request.pending_only and inv.state not in (OPEN, ACCEPTED):
                return False
            return (not start or inv.creation_date >= start) and (not end or inv.creation_date <= end)

        invoices = node.invoice_list
        picked = []
        if request.reversed:
            top = request.index_offset - 1 if request.index_offset else len(invoices)
            for inv in reversed(invoices[: max(top, 0)]):
                if wanted(inv):
                    picked.append(inv)
                    if len(picked) == limit:
                        break
            picked.reverse()
        else:
            for inv in invoices[request.index_offset :]:
                if wanted(inv):
                    picked.append(inv)
                    if len(picked) == limit:
                        break
        return ln.ListInvoiceResponse(
            invoices=[wire.invoice(i) for i in picked],
            first_index_offset=picked[0].add_index if picked else 0,
            last_index_offset=picked[-1].add_index if picked else 0,
        )

    async def SubscribeInvoices(self, request, context):
        node = self.node
        queue: asyncio.Queue = asyncio.Queue()
        node.invoice_subscribers.add(queue)
        try:
            for inv in node.invoice_backlog(request.add_index, request.settle_index):
                yield wire.invoice(inv)
            while True:
                yield wire.invoice(await queue.get())
        finally:
            node.invoice_subscribers.discard(queue)

    @unary
    def DecodePayReq(self, request):
        try:
            pr = self.net.decode_payreq(request.pay_req)
        except bolt11codec.PayReqError as exc:
            raise RpcFailure(str(exc)) from exc
        if pr.network != "regtest":
            raise RpcFailure("invoice not for current active network 'regtest'")
        return wire.pay_req(pr)

    @unary
    def ChannelBalance(self, request):
        b = self.node.balances

        def amount(msat: int) -> ln.Amount:
            return ln.Amount(sat=msat // 1000, msat=msat)

        return ln.ChannelBalanceResponse(
            balance=b.local_msat // 1000,
            local_balance=amount(b.local_msat),
            remote_balance=amount(b.remote_msat),
            unsettled_local_balance=amount(b.unsettled_local_msat),
            unsettled_remote_balance=amount(b.unsettled_remote_msat),
            pending_open_local_balance=amount(0),
            pending_open_remote_balance=amount(0),
        )

    @unary
    def WalletBalance(self, request):
        sat = self.net.settings.wallet_balance_sat
        return ln.WalletBalanceResponse(
            total_balance=sat,
            confirmed_balance=sat,
            unconfirmed_balance=0,
            account_balance={"default": ln.WalletAccountBalance(confirmed_balance=sat)},
        )

    @unary
    def ListPayments(self, request):
        payments = sorted(self.node.payments.values(), key=lambda p: p.payment_index)
        limit = request.max_payments or DEFAULT_PAGE
        start, end = request.creation_date_start, request.creation_date_end

        def wanted(p):
            if not request.include_incomplete and p.status != SUCCEEDED:
                return False
            created = p.creation_time_ns // 1_000_000_000
            return (not start or created >= start) and (not end or created <= end)

        if request.reversed:
            top = request.index_offset or (1 << 64)
            picked = [p for p in payments if p.payment_index < top and wanted(p)][-limit:]
        else:
            picked = [p for p in payments if p.payment_index > request.index_offset and wanted(p)][:limit]
        return ln.ListPaymentsResponse(
            payments=[self._payment_msg(p) for p in picked],
            first_index_offset=picked[0].payment_index if picked else 0,
            last_index_offset=picked[-1].payment_index if picked else 0,
            total_num_payments=len(payments) if request.count_total_payments else 0,
        )

    def _payment_msg(self, pay):
        return wire.payment(pay, pay.payee_pubkey.hex())


def _terminal(pay) -> bool:
    return pay.status != IN_FLIGHT


class RouterServicer(_Base, router_grpc.RouterServicer):
    async def SendPaymentV2(self, request, context):
        try:
            pay = self.net.payments.start(self.node, request)
        except RpcFailure as exc:
            await context.abort(exc.code, exc.text)
        async for msg in self._follow(pay.payment_hash, request.no_inflight_updates):
            yield msg

    async def TrackPaymentV2(self, request, context):
        if bytes(request.payment_hash) not in self.node.payments:
            await context.abort(grpc.StatusCode.NOT_FOUND, "payment isn't initiated")
        async for msg in self._follow(bytes(request.payment_hash), request.no_inflight_updates):
            yield msg

    async def _follow(self, payment_hash: bytes, no_inflight_updates: bool):
        """Current state first, then every update until SUCCEEDED/FAILED; subscribed before reading so
        no transition can slip between the snapshot and the queue."""
        node = self.node
        queue: asyncio.Queue = asyncio.Queue()
        watchers = node.payment_subscribers.setdefault(payment_hash, set())
        watchers.add(queue)
        try:
            pay = node.payments[payment_hash]
            while True:
                done = _terminal(pay)  # read before yielding: the live record may change meanwhile
                if done or not no_inflight_updates:
                    yield wire.payment(pay, pay.payee_pubkey.hex())
                if done:
                    return
                pay = await queue.get()
        finally:
            watchers.discard(queue)
            if not watchers:
                node.payment_subscribers.pop(payment_hash, None)

    async def TrackPayments(self, request, context):
        node = self.node
        queue: asyncio.Queue = asyncio.Queue()
        node.all_payment_subscribers.add(queue)
        try:
            if not request.no_inflight_updates:
                for pay in list(node.payments.values()):
                    if not _terminal(pay):
                        yield wire.payment(pay, pay.payee_pubkey.hex())
            while True:
                pay = await queue.get()
                if _terminal(pay) or not request.no_inflight_updates:
                    yield wire.payment(pay, pay.payee_pubkey.hex())
        finally:
            node.all_payment_subscribers.discard(queue)


class InvoicesServicer(_Base, inv_grpc.InvoicesServicer):
    async def SubscribeSingleInvoice(self, request, context):
        node = self.node
        payment_hash = bytes(request.r_hash)
        queue: asyncio.Queue = asyncio.Queue()
        watchers = node.single_subscribers.setdefault(payment_hash, set())
        watchers.add(queue)
        try:
            node.expire_due()
            inv = node.invoices.get(payment_hash)
            while True:
                if inv is not None:
                    done = inv.state in (SETTLED, CANCELED)
                    yield wire.invoice(inv)
                    if done:
                        return
                inv = await queue.get()
        finally:
            watchers.discard(queue)
            if not watchers:
                node.single_subscribers.pop(payment_hash, None)

    @unary
    def CancelInvoice(self, request):
        self.net.cancel_invoice(self.node, bytes(request.payment_hash))
        return inv_pb.CancelInvoiceResp()

    @unary
    def AddHoldInvoice(self, request):
        inv = self.node.add_invoice(
            memo=request.memo,
            value_msat=_amount_msat(request.value, request.value_msat),
            expiry_s=request.expiry,
            payment_hash=bytes(request.hash),
            description_hash=bytes(request.description_hash) or None,
            cltv_expiry=request.cltv_expiry,
            private=request.private,
        )
        return inv_pb.AddHoldInvoiceResp(
            payment_request=inv.payment_request, add_index=inv.add_index, payment_addr=inv.payment_addr
        )

    @unary
    def SettleInvoice(self, request):
        self.net.settle_invoice(self.node, bytes(request.preimage))
        return inv_pb.SettleInvoiceResp()

    @unary
    def LookupInvoiceV2(self, request):
        ref = request.WhichOneof("invoice_ref")
        if ref == "payment_hash":
            return wire.invoice(self.node.lookup_invoice(bytes(request.payment_hash)))
        if ref == "payment_addr":
            addr = bytes(request.payment_addr)
            for inv in self.node.invoice_list:
                if inv.payment_addr == addr:
                    return wire.invoice(inv)
        raise not_found_invoice()


def add_servicers(server: grpc.aio.Server, network: Network, node: Node) -> None:
    ln_grpc.add_LightningServicer_to_server(LightningServicer(network, node), server)
    router_grpc.add_RouterServicer_to_server(RouterServicer(network, node), server)
    inv_grpc.add_InvoicesServicer_to_server(InvoicesServicer(network, node), server)
