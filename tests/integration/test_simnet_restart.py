"""lnd_simnet keeps everything across a SIGKILL: invoices, payments, indexes, balances, held payments."""

import os

import aiounittest

from shared.lightning.types import InvoiceState
from tests.support.simnet import Simnet, wait_for

FEE = 10_000_000


async def pay(net, payer, payment_request):
    return [
        u
        async for u in net.client(payer).send_payment(
            payment_request=payment_request, fee_limit_msat=FEE, timeout_s=30
        )
    ][-1]


class SimnetRestartTest(aiounittest.AsyncTestCase):
    async def test_sigkill_and_restart_keep_state(self):
        async with Simnet(serve_args=("--delay-ms", "0")) as net:
            alice = net.client("alice")
            paid = await alice.add_invoice(
                value_msat=30_000, memo="paid", expiry_s=3600, preimage=os.urandom(32)
            )
            self.assertEqual((await pay(net, "bob", paid.payment_request)).status.name, "SUCCEEDED")
            open_inv = await alice.add_invoice(
                value_msat=1000, memo="open", expiry_s=3600, preimage=os.urandom(32)
            )
            held = await alice.add_invoice(
                value_msat=2000, memo="simnet:hold", expiry_s=3600, preimage=os.urandom(32)
            )
            stream = net.client("bob").send_payment(
                payment_request=held.payment_request, fee_limit_msat=FEE, timeout_s=30
            )
            await stream.__anext__()

            async def locked():
                return (await net.client("bob").channel_balance()).unsettled_local_msat > 0

            await wait_for(locked, what="HTLC locked")
            balances = (await alice.channel_balance(), await net.client("bob").channel_balance())
            last = await alice.add_invoice(
                value_msat=5000, memo="last", expiry_s=3600, preimage=os.urandom(32)
            )
            await stream.aclose()

            await net.kill()  # SIGKILL right after the last reply
            await net.start()

            alice = net.client("alice")
            self.assertEqual((await alice.lookup_invoice(paid.payment_hash)).state, InvoiceState.SETTLED)
            self.assertEqual((await alice.lookup_invoice(paid.payment_hash)).settle_index, 1)
            self.assertEqual((await alice.lookup_invoice(open_inv.payment_hash)).state, InvoiceState.OPEN)
            self.assertEqual((await alice.lookup_invoice(last.payment_hash)).add_index, last.add_index)
            self.assertEqual(
                (await alice.channel_balance(), await net.client("bob").channel_balance()), balances
            )
            tracked = [u async for u in net.client("bob").track_payment(paid.payment_hash)]
            self.assertEqual(tracked[-1].status.name, "SUCCEEDED")
            # indexes continue where they were
            nxt = await alice.add_invoice(
                value_msat=1000, memo="next", expiry_s=3600, preimage=os.urandom(32)
            )
            self.assertEqual(nxt.add_index, last.add_index + 1)
            self.assertEqual((await pay(net, "bob", nxt.payment_request)).payment_index, 3)
            self.assertEqual((await alice.lookup_invoice(nxt.payment_hash)).settle_index, 2)
            # the held payment survived and can still be released
            await net.cli("release", held.payment_hash.hex(), "--outcome", "succeed")
            final = [u async for u in net.client("bob").track_payment(held.payment_hash)][-1]
            self.assertEqual(final.status.name, "SUCCEEDED")
            self.assertEqual((await alice.lookup_invoice(held.payment_hash)).settle_index, 3)
            # and a graceful restart too
            await net.restart()
            self.assertEqual(
                (await net.client("alice").lookup_invoice(held.payment_hash)).state, InvoiceState.SETTLED
            )
