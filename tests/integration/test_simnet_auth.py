"""lnd_simnet auth (macaroons as LND checks them, TLS pinning) and a third-party style raw-stub client."""

import os

import aiounittest
import grpc

from shared.errors import LightningAuthError
from shared.lightning.grpc_client import GrpcLightningClient
from shared.lightning.protos import invoices_pb2 as inv
from shared.lightning.protos import invoices_pb2_grpc as inv_grpc
from shared.lightning.protos import lightning_pb2 as ln
from shared.lightning.protos import lightning_pb2_grpc as lnrpc
from shared.lightning.protos import router_pb2 as routerrpc
from shared.lightning.protos import router_pb2_grpc as router_grpc
from tests.support.simnet import Simnet


class _Plugin(grpc.AuthMetadataPlugin):
    def __init__(self, mac_hex):
        self.mac_hex = mac_hex

    def __call__(self, context, callback):
        callback((("macaroon", self.mac_hex),), None)


class SimnetAuthTest(aiounittest.AsyncTestCase):
    async def test_macaroon_refusals_use_lnds_texts(self):
        async with Simnet() as net:
            admin_hex = net.macaroon_hex("alice")
            self.assertTrue(admin_hex.startswith("0201036c6e64"))
            host, cert = net.node("alice")["rpcserver"], net.tls_cert("alice")
            # no macaroon at all: TLS only
            async with grpc.aio.secure_channel(host, grpc.ssl_channel_credentials(cert)) as channel:
                with self.assertRaises(grpc.aio.AioRpcError) as ctx:
                    await lnrpc.LightningStub(channel).GetInfo(ln.GetInfoRequest(), timeout=10)
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNKNOWN)
                self.assertEqual(ctx.exception.details(), "expected 1 macaroon, got 0")
                stream = lnrpc.LightningStub(channel).SubscribeInvoices(ln.InvoiceSubscription())
                with self.assertRaises(grpc.aio.AioRpcError) as ctx:
                    await stream.read()
                self.assertEqual(ctx.exception.details(), "expected 1 macaroon, got 0")
            cases = {
                net.macaroon_hex("bob"): "verification failed: signature mismatch after caveat verification",
                "zz": "encoding/hex: invalid byte: U+007A 'z'",
            }
            for mac, text in cases.items():
                client = GrpcLightningClient(host, cert, mac)
                with self.assertRaises(LightningAuthError) as ctx:
                    await client.get_info()
                self.assertEqual((ctx.exception.grpc_code, ctx.exception.message), ("UNKNOWN", text))
                await client.close()
            readonly = net.client("alice", macaroon="readonly")
            await readonly.get_info()
            with self.assertRaises(LightningAuthError) as ctx:
                await readonly.add_invoice(value_msat=1000, memo="", expiry_s=60, preimage=os.urandom(32))
            self.assertEqual(ctx.exception.message, "permission denied")
            invoice_mac = net.client("alice", macaroon="invoice")
            await invoice_mac.add_invoice(value_msat=1000, memo="", expiry_s=60, preimage=os.urandom(32))

    async def test_wrong_tls_cert_is_refused(self):
        async with Simnet() as net:
            client = GrpcLightningClient(
                net.node("alice")["rpcserver"], net.tls_cert("bob"), net.macaroon_hex("alice"), timeout_s=5
            )
            with self.assertRaises((LightningAuthError,)):
                await client.get_info()
            await client.close()
            down = GrpcLightningClient(
                "127.0.0.1:1", net.tls_cert("alice"), net.macaroon_hex("alice"), timeout_s=2
            )
            from shared.errors import LightningUnavailable

            with self.assertRaises(LightningUnavailable):
                await down.get_info()
            await down.close()

    async def test_raw_generated_stubs_like_a_third_party_client(self):
        """What LNbits' LndWallet does: generated stubs, composite creds, hex macaroon metadata."""
        async with Simnet(serve_args=("--delay-ms", "0")) as net:
            creds = {}
            for name in ("alice", "bob"):
                creds[name] = grpc.composite_channel_credentials(
                    grpc.ssl_channel_credentials(net.tls_cert(name)),
                    grpc.metadata_call_credentials(_Plugin(net.macaroon_hex(name))),
                )
            alice_ch = grpc.aio.secure_channel(net.node("alice")["rpcserver"], creds["alice"])
            bob_ch = grpc.aio.secure_channel(net.node("bob")["rpcserver"], creds["bob"])
            try:
                alice, bob_router = lnrpc.LightningStub(alice_ch), router_grpc.RouterStub(bob_ch)
                balance = await alice.ChannelBalance(ln.ChannelBalanceRequest())
                self.assertEqual(balance.balance * 1000, balance.local_balance.msat)
                preimage = os.urandom(32)
                resp = await alice.AddInvoice(
                    ln.Invoice(value=21, memo="lnbits", private=True, r_preimage=preimage)
                )
                self.assertEqual(len(resp.r_hash), 32)
                # LNbits reads only the first message with no_inflight_updates=True
                call = bob_router.SendPaymentV2(
                    routerrpc.SendPaymentRequest(
                        payment_request=resp.payment_request,
                        fee_limit_msat=100_000,
                        timeout_seconds=30,
                        no_inflight_updates=True,
                    )
                )
                first = await call.read()
                self.assertEqual(ln.Payment.PaymentStatus.Name(first.status), "SUCCEEDED")
                self.assertEqual(first.payment_preimage, preimage.hex())
                self.assertEqual(ln.PaymentFailureReason.Name(first.failure_reason), "FAILURE_REASON_NONE")
                looked = await inv_grpc.InvoicesStub(alice_ch).LookupInvoiceV2(
                    inv.LookupInvoiceMsg(payment_hash=resp.r_hash)
                )
                self.assertTrue(looked.settled)
                self.assertEqual((looked.amt_paid_sat, looked.amt_paid_msat), (21, 21_000))
                with self.assertRaises(grpc.aio.AioRpcError) as ctx:
                    await inv_grpc.InvoicesStub(alice_ch).LookupInvoiceV2(
                        inv.LookupInvoiceMsg(payment_hash=os.urandom(32))
                    )
                self.assertEqual(
                    (ctx.exception.code(), ctx.exception.details()),
                    (grpc.StatusCode.NOT_FOUND, "unable to locate invoice"),
                )
                again = bob_router.SendPaymentV2(
                    routerrpc.SendPaymentRequest(payment_request=resp.payment_request, fee_limit_msat=100_000)
                )
                with self.assertRaises(grpc.aio.AioRpcError) as ctx:
                    await again.read()
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
                track = bob_router.TrackPaymentV2(routerrpc.TrackPaymentRequest(payment_hash=os.urandom(32)))
                with self.assertRaises(grpc.aio.AioRpcError) as ctx:
                    await track.read()
                self.assertEqual(
                    (ctx.exception.code(), ctx.exception.details()),
                    (grpc.StatusCode.NOT_FOUND, "payment isn't initiated"),
                )
                payreq = await alice.DecodePayReq(ln.PayReqString(pay_req=resp.payment_request))
                self.assertEqual((payreq.payment_hash, payreq.num_satoshis), (resp.r_hash.hex(), 21))
                wallet = await alice.WalletBalance(ln.WalletBalanceRequest())
                self.assertGreater(wallet.confirmed_balance, 0)
            finally:
                await alice_ch.close()
                await bob_ch.close()
