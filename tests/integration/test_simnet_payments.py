"""lnd_simnet payments over real gRPC: streams, duplicates, fees, failures on purpose, hold+release."""

import hashlib
import os

import aiounittest
import grpc

from shared.errors import LightningNotFound, LightningRequestError, PaymentAlreadySucceeded, PaymentInFlight
from shared.lightning.protos import lightning_pb2 as ln
from shared.lightning.protos import router_pb2 as router
from tests.support.simnet import Simnet, wait_for

FEE = 10_000_000


async def collect(net, payer, payment_request, **kw):
    kw.setdefault("fee_limit_msat", FEE)
    return [
        u async for u in net.client(payer).send_payment(payment_request=payment_request, timeout_s=30, **kw)
    ]


async def invoice(net, node, value_msat, memo=""):
    return await net.client(node).add_invoice(
        value_msat=value_msat, memo=memo, expiry_s=3600, preimage=os.urandom(32)
    )


async def release(net, payment_hash: bytes, outcome: str) -> dict:
    """`release` via the CLI, retried until the HTLC is locked (the first IN_FLIGHT may precede it)."""

    async def attempt():
        result = await net.cli(
            "release", "--node", "alice", payment_hash.hex(), "--outcome", outcome, check=False
        )
        return result if "error" not in result else None

    return await wait_for(attempt, what="release")


class SimnetPaymentTest(aiounittest.AsyncTestCase):
    async def test_payment_stream_balances_duplicates_and_track(self):
        async with Simnet() as net:
            alice, bob = net.client("alice"), net.client("bob")
            before_a, before_b = await alice.channel_balance(), await bob.channel_balance()
            added = await invoice(net, "alice", 100_000_000)  # 100k sat
            updates = await collect(net, "bob", added.payment_request)
            self.assertEqual([u.status.name for u in updates], ["IN_FLIGHT", "IN_FLIGHT", "SUCCEEDED"])
            final = updates[-1]
            fee = 1000 + 100_000_000 // 1_000_000  # default base 1000 msat + 1 ppm
            self.assertEqual((final.value_msat, final.fee_msat, final.payment_index), (100_000_000, fee, 1))
            self.assertEqual(hashlib.sha256(final.preimage).digest(), added.payment_hash)
            after_a, after_b = await alice.channel_balance(), await bob.channel_balance()
            self.assertEqual(after_a.local_msat - before_a.local_msat, 100_000_000)
            self.assertEqual(before_b.local_msat - after_b.local_msat, 100_000_000 + fee)
            with self.assertRaises(PaymentAlreadySucceeded) as ctx:
                await collect(net, "bob", added.payment_request)
            self.assertEqual(
                (ctx.exception.grpc_code, ctx.exception.message),
                ("ALREADY_EXISTS", "invoice is already paid"),
            )
            tracked = [u async for u in bob.track_payment(added.payment_hash)]
            self.assertEqual([u.status.name for u in tracked], ["SUCCEEDED"])
            with self.assertRaises(LightningNotFound) as ctx:
                [u async for u in bob.track_payment(os.urandom(32))]
            self.assertEqual(ctx.exception.message, "payment isn't initiated")
            # Raw wire fields clients read: hex strings, deprecated value/fee, ListPayments
            raw = await bob.lightning_stub.ListPayments(
                ln.ListPaymentsRequest(include_incomplete=True, count_total_payments=True),
                metadata=bob.call_metadata,
            )
            p = raw.payments[0]
            self.assertEqual(
                (p.payment_hash, p.value, p.fee, p.status),
                (added.payment_hash.hex(), 100_000, fee // 1000, ln.Payment.SUCCEEDED),
            )
            self.assertEqual(p.payment_preimage, final.preimage.hex())
            self.assertEqual(p.htlcs[0].route.total_fees_msat, fee)
            self.assertEqual(raw.total_num_payments, 1)
            cb = await alice.lightning_stub.ChannelBalance(
                ln.ChannelBalanceRequest(), metadata=alice.call_metadata
            )
            self.assertEqual(cb.balance, cb.local_balance.sat)
            # no_inflight_updates -> only the terminal message
            other = await invoice(net, "alice", 1000)
            only = await collect(net, "bob", other.payment_request, no_inflight_updates=True)
            self.assertEqual([u.status.name for u in only], ["SUCCEEDED"])

    async def test_validation_refusals(self):
        async with Simnet() as net:
            own = await invoice(net, "bob", 1000)
            with self.assertRaises(LightningRequestError) as ctx:
                await collect(net, "bob", own.payment_request)
            self.assertEqual(ctx.exception.message, "self-payments not allowed")
            with_amount = await invoice(net, "alice", 1000)
            with self.assertRaises(LightningRequestError) as ctx:
                await collect(net, "bob", with_amount.payment_request, amount_msat=5000)
            self.assertEqual(
                ctx.exception.message, "amount must not be specified when paying a non-zero amount invoice"
            )
            zero = await invoice(net, "alice", 0)
            with self.assertRaises(LightningRequestError) as ctx:
                await collect(net, "bob", zero.payment_request)
            self.assertEqual(
                ctx.exception.message, "amount must be specified when paying a zero amount invoice"
            )
            paid = await collect(net, "bob", zero.payment_request, amount_msat=7000)
            self.assertEqual((paid[-1].status.name, paid[-1].value_msat), ("SUCCEEDED", 7000))
            # a mainnet invoice is refused with LND's text
            import coincurve

            from lnd_simnet import bolt11codec

            mainnet = bolt11codec.encode(
                coincurve.PrivateKey(),
                currency="bc",
                amount_msat=1000,
                timestamp=int(__import__("time").time()),
                payment_hash=os.urandom(32),
                payment_addr=os.urandom(32),
                expiry_s=3600,
                cltv_expiry=80,
            )
            with self.assertRaises(LightningRequestError) as ctx:
                await collect(net, "bob", mainnet)
            self.assertEqual(ctx.exception.message, "invoice not for current active network 'regtest'")
            # an invoice of a node outside the network: FAILED NO_ROUTE
            foreign = bolt11codec.encode(
                coincurve.PrivateKey(),
                currency="bcrt",
                amount_msat=1000,
                timestamp=int(__import__("time").time()),
                payment_hash=os.urandom(32),
                payment_addr=os.urandom(32),
                expiry_s=3600,
                cltv_expiry=80,
            )
            out = await collect(net, "bob", foreign)
            self.assertEqual((out[-1].status.name, out[-1].failure_reason), ("FAILED", "NO_ROUTE"))

    async def test_fee_limits(self):
        async with Simnet(serve_args=("--fee-base-msat", "2000", "--fee-ppm", "0")) as net:
            added = await invoice(net, "alice", 50_000)
            low = await collect(net, "bob", added.payment_request, fee_limit_msat=1999)
            self.assertEqual((low[-1].status.name, low[-1].failure_reason), ("FAILED", "NO_ROUTE"))
            zero = await collect(net, "bob", added.payment_request, fee_limit_msat=0)  # zero-fee routes only
            self.assertEqual(zero[-1].failure_reason, "NO_ROUTE")
            ok = await collect(
                net, "bob", added.payment_request, fee_limit_msat=2000
            )  # failed -> retry allowed
            self.assertEqual((ok[-1].status.name, ok[-1].fee_msat), ("SUCCEEDED", 2000))
            # fee_limit_sat and fee_limit_msat together are refused
            call = net.client("bob").router_stub.SendPaymentV2(
                router.SendPaymentRequest(
                    payment_request=(await invoice(net, "alice", 1000)).payment_request,
                    fee_limit_sat=1,
                    fee_limit_msat=1000,
                ),
                metadata=net.client("bob").call_metadata,
            )
            with self.assertRaises(grpc.aio.AioRpcError) as ctx:
                await call.read()
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNKNOWN)

    async def test_memo_markers_and_balance(self):
        async with Simnet(serve_args=("--capacity-sat", "1000000", "--alice-local-sat", "500000")) as net:
            for marker, reason in (
                ("simnet:no_route", "NO_ROUTE"),
                ("simnet:insufficient_balance", "INSUFFICIENT_BALANCE"),
                ("pay me simnet:timeout", "TIMEOUT"),
                ("simnet:fail=incorrect_payment_details", "INCORRECT_PAYMENT_DETAILS"),
            ):
                added = await invoice(net, "alice", 1000, memo=marker)
                out = await collect(net, "bob", added.payment_request)
                self.assertEqual((out[-1].status.name, out[-1].failure_reason), ("FAILED", reason), marker)
                self.assertEqual(out[-1].preimage, None)
            too_big = await invoice(net, "alice", 499_999_500)  # bob has 500k sat, the fee tips it over
            out = await collect(net, "bob", too_big.payment_request)
            self.assertEqual(out[-1].failure_reason, "INSUFFICIENT_BALANCE")
            slow = await invoice(net, "alice", 1000, memo="simnet:delay=300")
            out = await collect(net, "bob", slow.payment_request)
            self.assertEqual(out[-1].status.name, "SUCCEEDED")
            listed = await net.client("bob").lightning_stub.ListPayments(
                ln.ListPaymentsRequest(include_incomplete=True), metadata=net.client("bob").call_metadata
            )
            htlc = listed.payments[-1].htlcs[0]
            # The simnet's own clock: the HTLC was held at least the marker's 300 ms (the network's
            # default delay is 20 ms). A lower bound only: a busy machine can only make it longer.
            self.assertGreaterEqual(htlc.resolve_time_ns - htlc.attempt_time_ns, 300_000_000)
            # a per-node knob via the control RPC
            await net.cli("configure", "--node", "bob", "--fail", "no_route")
            out = await collect(net, "bob", (await invoice(net, "alice", 1000)).payment_request)
            self.assertEqual(out[-1].failure_reason, "NO_ROUTE")
            await net.cli("configure", "--node", "bob")
            out = await collect(net, "bob", (await invoice(net, "alice", 1000)).payment_request)
            self.assertEqual(out[-1].status.name, "SUCCEEDED")

    async def test_hold_marker_and_release(self):
        async with Simnet(serve_args=("--delay-ms", "0")) as net:
            bob = net.client("bob")
            held = await invoice(net, "alice", 2000, memo="simnet:hold")
            stream = bob.send_payment(payment_request=held.payment_request, fee_limit_msat=FEE, timeout_s=30)
            self.assertEqual((await stream.__anext__()).status.name, "IN_FLIGHT")
            with self.assertRaises(PaymentInFlight) as ctx:
                await collect(net, "bob", held.payment_request)
            self.assertEqual(ctx.exception.message, "payment is in transition")
            await release(net, held.payment_hash, "succeed")
            final = [u async for u in stream][-1]
            self.assertEqual(final.status.name, "SUCCEEDED")
            self.assertEqual(
                (await net.client("alice").lookup_invoice(held.payment_hash)).state.name, "SETTLED"
            )
            failing = await invoice(net, "alice", 2000, memo="simnet:hold")
            stream = bob.send_payment(
                payment_request=failing.payment_request, fee_limit_msat=FEE, timeout_s=30
            )
            await stream.__anext__()
            await release(net, failing.payment_hash, "fail")
            final = [u async for u in stream][-1]
            self.assertEqual((final.status.name, final.failure_reason), ("FAILED", "NO_ROUTE"))
            self.assertEqual((await bob.channel_balance()).unsettled_local_msat, 0)
