"""lnd_simnet over real gRPC (TLS + macaroon): invoices, subscriptions, decode, balances."""

import asyncio
import hashlib
import os

import aiounittest
import bolt11

from shared.errors import InvoiceAlreadyExists, LightningNotFound, LightningRequestError
from shared.lightning.protos import lightning_pb2 as ln
from shared.lightning.types import InvoiceState
from tests.support.simnet import Simnet, wait_for

FEE = 10_000_000  # generous fee limit, msat


async def pay(net: Simnet, payer: str, payment_request: str):
    last = None
    async for update in net.client(payer).send_payment(
        payment_request=payment_request, fee_limit_msat=FEE, timeout_s=30, no_inflight_updates=True
    ):
        last = update
    return last


class SimnetInvoiceTest(aiounittest.AsyncTestCase):
    async def test_description_hash_replaces_the_memo_in_the_payment_request(self):
        """LNURL-pay invoices: AddInvoice(description_hash) puts BOLT11 ``h`` in the request instead of
        ``d``, in msat precision; LookupInvoice and DecodePayReq return the hash."""
        metadata = '[["text/plain","Payment to alice@example.com"]]'
        description_hash = hashlib.sha256(metadata.encode()).digest()
        async with Simnet() as net:
            alice = net.client("alice")
            added = await alice.add_invoice(
                value_msat=1_500,
                memo="a comment",
                expiry_s=600,
                preimage=os.urandom(32),
                description_hash=description_hash,
            )
            decoded = bolt11.decode(added.payment_request)
            self.assertEqual(decoded.description_hash, description_hash.hex())
            self.assertIsNone(decoded.description)
            self.assertEqual(decoded.amount_msat, 1_500)
            found = await alice.lookup_invoice(added.payment_hash)
            self.assertEqual((found.description_hash, found.memo), (description_hash, "a comment"))
            remote = await net.client("bob").decode_pay_req(added.payment_request)
            self.assertEqual((remote.description_hash, remote.description), (description_hash, ""))
            with self.assertRaises(LightningRequestError):
                await alice.add_invoice(
                    value_msat=1000, memo="", expiry_s=0, preimage=os.urandom(32), description_hash=b"x" * 31
                )

    async def test_add_lookup_list_decode(self):
        async with Simnet() as net:
            alice = net.client("alice")
            info = await alice.get_info()
            self.assertEqual((info.alias, info.network, info.num_active_channels), ("alice", "regtest", 1))
            with self.assertRaises(LightningNotFound):  # empty DB
                await alice.lookup_invoice(os.urandom(32))
            preimage = os.urandom(32)
            added = await alice.add_invoice(
                value_msat=1_234_000, memo="coffee", expiry_s=600, preimage=preimage
            )
            self.assertEqual(added.payment_hash, hashlib.sha256(preimage).digest())
            self.assertEqual(added.add_index, 1)
            decoded = bolt11.decode(added.payment_request)
            self.assertTrue(added.payment_request.startswith("lnbcrt12340n1"))
            self.assertEqual(decoded.amount_msat, 1_234_000)
            self.assertEqual(decoded.payment_hash, added.payment_hash.hex())
            self.assertEqual(decoded.expiry, 600)
            self.assertEqual(decoded.payee, info.identity_pubkey)
            self.assertEqual(decoded.payment_secret, added.payment_addr.hex())
            inv = await alice.lookup_invoice(added.payment_hash)
            self.assertEqual(
                (inv.state, inv.value_msat, inv.memo, inv.preimage),
                (InvoiceState.OPEN, 1_234_000, "coffee", preimage),
            )
            with self.assertRaises(LightningNotFound):
                await alice.lookup_invoice(os.urandom(32))
            with self.assertRaises(InvoiceAlreadyExists):
                await alice.add_invoice(value_msat=1000, memo="", expiry_s=0, preimage=preimage)
            dec = await net.client("bob").decode_pay_req(added.payment_request)
            self.assertEqual(
                (dec.destination, dec.amount_msat, dec.expiry_s, dec.cltv_expiry),
                (info.identity_pubkey, 1_234_000, 600, 80),
            )
            with self.assertRaises(LightningRequestError):
                await alice.decode_pay_req("lnbcrt1garbage")
            # default expiry, zero amount, raw fields: deprecated ones filled, ListInvoices paging
            second = await alice.add_invoice(value_msat=0, memo="", expiry_s=0, preimage=os.urandom(32))
            raw = await alice.lightning_stub.LookupInvoice(
                ln.PaymentHash(r_hash=second.payment_hash), metadata=alice.call_metadata
            )
            self.assertEqual((raw.expiry, raw.cltv_expiry, raw.settled, raw.add_index), (86400, 80, False, 2))
            page = await alice.lightning_stub.ListInvoices(
                ln.ListInvoiceRequest(index_offset=1, num_max_invoices=5), metadata=alice.call_metadata
            )
            self.assertEqual([i.add_index for i in page.invoices], [2])
            self.assertEqual((page.first_index_offset, page.last_index_offset), (2, 2))
            rev = await alice.lightning_stub.ListInvoices(
                ln.ListInvoiceRequest(reversed=True, num_max_invoices=1), metadata=alice.call_metadata
            )
            self.assertEqual([i.add_index for i in rev.invoices], [2])

    async def test_subscribe_invoices_settle_and_replay(self):
        async with Simnet(serve_args=("--delay-ms", "0")) as net:
            alice = net.client("alice")
            events: asyncio.Queue = asyncio.Queue()

            await alice.add_invoice(value_msat=1, memo="zero", expiry_s=3600, preimage=os.urandom(32))
            first = await alice.add_invoice(
                value_msat=10_000, memo="a", expiry_s=3600, preimage=os.urandom(32)
            )

            async def consume():
                # add_index=0 would miss `first` if it raced the subscription: replay it instead.
                async for inv in alice.subscribe_invoices(add_index=first.add_index - 1):
                    await events.put(inv)

            task = asyncio.create_task(consume())
            try:
                ev = await asyncio.wait_for(events.get(), 10)
                self.assertEqual(
                    (ev.payment_hash, ev.state, ev.add_index), (first.payment_hash, InvoiceState.OPEN, 2)
                )
                result = await pay(net, "bob", first.payment_request)
                self.assertEqual(result.status.name, "SUCCEEDED")
                ev = await asyncio.wait_for(events.get(), 10)
                self.assertEqual(
                    (ev.state, ev.settle_index, ev.amt_paid_msat), (InvoiceState.SETTLED, 1, 10_000)
                )
                self.assertEqual(hashlib.sha256(result.preimage).digest(), first.payment_hash)
            finally:
                task.cancel()
            # Two more settles while "offline".
            later = []
            for i in range(2):
                added = await alice.add_invoice(
                    value_msat=5000, memo=str(i), expiry_s=3600, preimage=os.urandom(32)
                )
                self.assertEqual((await pay(net, "bob", added.payment_request)).status.name, "SUCCEEDED")
                later.append(added.payment_hash)

            async def replay(settle_index: int, expect: int) -> list:
                got = []
                stream = alice.subscribe_invoices(settle_index=settle_index)
                if expect:
                    async for inv in stream:
                        got.append(inv)
                        if len(got) == expect:
                            break
                await stream.aclose()
                return got

            got = await asyncio.wait_for(replay(1, 2), 10)
            self.assertEqual([(g.payment_hash, g.settle_index) for g in got], [(later[0], 2), (later[1], 3)])
            # Resubscribing with the newest settle_index replays nothing: the next event is a live add.
            # (add_index replays just `fresh`, which proves the stream is live before the negative check.)
            fresh = await alice.add_invoice(
                value_msat=1000, memo="live", expiry_s=3600, preimage=os.urandom(32)
            )
            stream = alice.subscribe_invoices(add_index=fresh.add_index - 1, settle_index=3)
            ev = await asyncio.wait_for(stream.__anext__(), 10)
            self.assertEqual((ev.payment_hash, ev.state), (fresh.payment_hash, InvoiceState.OPEN))
            with self.assertRaises(TimeoutError):
                await asyncio.wait_for(stream.__anext__(), 0.3)
            await stream.aclose()
            # add_index replay: current state, settled ones as SETTLED
            got = []
            async for inv in alice.subscribe_invoices(add_index=3):
                got.append((inv.add_index, inv.state))
                if len(got) == 2:
                    break
            self.assertEqual(got, [(4, InvoiceState.SETTLED), (5, InvoiceState.OPEN)])
            raw = await alice.lightning_stub.LookupInvoice(
                ln.PaymentHash(r_hash=first.payment_hash), metadata=alice.call_metadata
            )
            self.assertEqual(
                (raw.settled, raw.amt_paid, raw.amt_paid_sat, raw.state),
                (True, 10_000, 10, ln.Invoice.SETTLED),
            )

    async def test_expired_invoice_is_canceled_and_refused(self):
        async with Simnet() as net:
            alice = net.client("alice")
            added = await alice.add_invoice(value_msat=1000, memo="soon", expiry_s=1, preimage=os.urandom(32))

            async def canceled():
                return (await alice.lookup_invoice(added.payment_hash)).state is InvoiceState.CANCELED

            await wait_for(canceled, timeout_s=30, what="expiry")
            with self.assertRaises(LightningRequestError) as ctx:
                await pay(net, "bob", added.payment_request)
            self.assertIn("invoice expired. Valid until", ctx.exception.message)

    async def test_hold_invoice_accept_settle_and_cancel(self):
        async with Simnet(serve_args=("--delay-ms", "0")) as net:
            alice, bob = net.client("alice"), net.client("bob")
            preimage = os.urandom(32)
            payment_hash = hashlib.sha256(preimage).digest()
            hold = await alice.add_hold_invoice(
                payment_hash=payment_hash, value_msat=50_000, memo="hold", expiry_s=3600
            )
            states = []

            async def watch():
                async for inv in alice.subscribe_single_invoice(payment_hash):
                    states.append(inv.state)

            watcher = asyncio.create_task(watch())
            with self.assertRaises(LightningRequestError) as ctx:
                await alice.settle_invoice(preimage)
            self.assertEqual(ctx.exception.message, "invoice still open")
            updates = bob.send_payment(payment_request=hold.payment_request, fee_limit_msat=FEE, timeout_s=30)
            first = await updates.__anext__()
            self.assertEqual(first.status.name, "IN_FLIGHT")

            async def accepted():
                return (await alice.lookup_invoice(payment_hash)).state is InvoiceState.ACCEPTED

            await wait_for(accepted, what="ACCEPTED")
            self.assertEqual((await bob.channel_balance()).unsettled_local_msat, 50_000 + 1000 + 0)
            await alice.settle_invoice(preimage)
            final = [u async for u in updates][-1]
            self.assertEqual((final.status.name, final.preimage), ("SUCCEEDED", preimage))
            await asyncio.wait_for(watcher, 10)  # the stream closes after SETTLED
            self.assertEqual(states, [InvoiceState.OPEN, InvoiceState.ACCEPTED, InvoiceState.SETTLED])
            await alice.settle_invoice(preimage)  # settling again succeeds
            with self.assertRaises(LightningRequestError):
                await alice.cancel_invoice(payment_hash)  # "invoice already settled"
            # A second hold invoice canceled while accepted fails the payer's payment.
            pre2 = os.urandom(32)
            hold2 = await alice.add_hold_invoice(
                payment_hash=hashlib.sha256(pre2).digest(), value_msat=1000, memo="", expiry_s=3600
            )
            updates = bob.send_payment(
                payment_request=hold2.payment_request, fee_limit_msat=FEE, timeout_s=30
            )
            await updates.__anext__()

            async def accepted2():
                inv = await alice.lookup_invoice(hashlib.sha256(pre2).digest())
                return inv.state is InvoiceState.ACCEPTED

            await wait_for(accepted2, what="ACCEPTED")
            await alice.cancel_invoice(hashlib.sha256(pre2).digest())
            await alice.cancel_invoice(hashlib.sha256(pre2).digest())  # idempotent
            final = [u async for u in updates][-1]
            self.assertEqual(
                (final.status.name, final.failure_reason), ("FAILED", "INCORRECT_PAYMENT_DETAILS")
            )
            self.assertEqual((await bob.channel_balance()).unsettled_local_msat, 0)
