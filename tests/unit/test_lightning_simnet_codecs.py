"""lnd_simnet's fast BOLT11 codec (checked against the `bolt11` package) and V2 macaroons."""

import hashlib
import os
import time
import unittest

import bolt11
import coincurve

from lnd_simnet import bolt11codec, macaroons


class Bolt11CodecTest(unittest.TestCase):
    def test_encoded_invoices_decode_with_the_bolt11_package(self):
        key = coincurve.PrivateKey()
        for amount_msat in (0, 1, 1000, 1_000_000, 123_456_789, 100_000_000_000):
            payment_hash = hashlib.sha256(os.urandom(32)).digest()
            addr = os.urandom(32)
            now = int(time.time())
            text = bolt11codec.encode(
                key,
                currency="bcrt",
                amount_msat=amount_msat,
                timestamp=now,
                payment_hash=payment_hash,
                payment_addr=addr,
                description="coffee ☕",
                expiry_s=86400,
                cltv_expiry=80,
            )
            self.assertTrue(text.startswith("lnbcrt"))
            theirs = bolt11.decode(text)
            self.assertEqual(theirs.payment_hash, payment_hash.hex())
            self.assertEqual(theirs.amount_msat or 0, amount_msat)
            self.assertEqual(theirs.expiry, 86400)
            self.assertEqual(theirs.min_final_cltv_expiry, 80)
            self.assertEqual(theirs.payee, key.public_key.format().hex())
            self.assertEqual(theirs.payment_secret, addr.hex())
            self.assertEqual(theirs.description, "coffee ☕")
            self.assertEqual(theirs.date, now)
            ours = bolt11codec.decode(text)
            self.assertEqual(ours.payee, key.public_key.format())
            self.assertEqual(
                (ours.amount_msat, ours.payment_hash, ours.network), (amount_msat, payment_hash, "regtest")
            )
            self.assertEqual(ours.features, bolt11codec.LND_FEATURE_BITS)

    def test_description_hash_and_defaults(self):
        key = coincurve.PrivateKey()
        dh = hashlib.sha256(b"metadata").digest()
        text = bolt11codec.encode(
            key,
            currency="bcrt",
            amount_msat=5000,
            timestamp=1_700_000_000,
            payment_hash=dh,
            payment_addr=dh,
            description_hash=dh,
            expiry_s=3600,
            cltv_expiry=40,
        )
        self.assertEqual(bolt11.decode(text).description_hash, dh.hex())
        self.assertEqual(bolt11codec.decode(text).description_hash, dh)

    def test_tampered_invoice_is_rejected(self):
        key = coincurve.PrivateKey()
        text = bolt11codec.encode(
            key,
            currency="bcrt",
            amount_msat=5000,
            timestamp=1,
            payment_hash=bytes(32),
            payment_addr=bytes(32),
            expiry_s=60,
            cltv_expiry=80,
        )
        bad = text[:-10] + ("q" if text[-10] != "q" else "p") + text[-9:]
        with self.assertRaises(bolt11codec.PayReqError):
            bolt11codec.decode(bad)
        with self.assertRaises(bolt11codec.PayReqError):
            bolt11codec.decode("not an invoice")

    def test_mainnet_prefix_is_recognised(self):
        key = coincurve.PrivateKey()
        text = bolt11codec.encode(
            key,
            currency="bc",
            amount_msat=5000,
            timestamp=1,
            payment_hash=bytes(32),
            payment_addr=bytes(32),
            expiry_s=60,
            cltv_expiry=80,
        )
        self.assertEqual(bolt11codec.decode(text).network, "mainnet")


class MacaroonTest(unittest.TestCase):
    def test_admin_macaroon_has_lnd_layout_and_verifies(self):
        root = os.urandom(32)
        raw = macaroons.mint(root, macaroons.ADMIN_OPS)
        self.assertTrue(raw.hex().startswith("0201036c6e64"))
        ops = macaroons.verify(root, raw)
        self.assertIn(("offchain", "write"), ops)
        self.assertIn(("invoices", "read"), ops)

    def test_other_root_key_fails_with_lnds_text(self):
        raw = macaroons.mint(os.urandom(32), macaroons.ADMIN_OPS)
        with self.assertRaises(macaroons.MacaroonError) as ctx:
            macaroons.verify(os.urandom(32), raw)
        self.assertEqual(
            str(ctx.exception), "verification failed: signature mismatch after caveat verification"
        )

    def test_tampered_or_garbage_fails(self):
        root = os.urandom(32)
        raw = bytearray(macaroons.mint(root, macaroons.READONLY_OPS))
        raw[-1] ^= 1
        with self.assertRaises(macaroons.MacaroonError):
            macaroons.verify(root, bytes(raw))
        with self.assertRaises(macaroons.MacaroonError):
            macaroons.verify(root, b"\x02garbage")

    def test_readonly_has_no_write(self):
        root = os.urandom(32)
        ops = macaroons.verify(root, macaroons.mint(root, macaroons.READONLY_OPS))
        self.assertNotIn(("offchain", "write"), ops)
