"""shared.bolt11: decoding into our value type, networks, amounts, expiry, and refusing bad input."""

import hashlib
import time
import unittest

from coincurve import PrivateKey

from shared import bolt11
from tests.support.bolt11_factory import BOB_PRIVKEY, expired_payment_request, make_payment_request

BOB_PUBKEY = PrivateKey.from_hex(BOB_PRIVKEY).public_key.format(compressed=True).hex()


class DecodeTest(unittest.TestCase):
    def test_regtest_invoice_round_trip(self):
        pr, payment_hash = make_payment_request(amount_msat=250_000, description="coffee", expiry_s=600)
        decoded = bolt11.decode(pr)
        self.assertEqual(decoded.network, "regtest")
        self.assertEqual(decoded.payment_hash, payment_hash)
        self.assertEqual(decoded.amount_msat, 250_000)
        self.assertEqual(decoded.description, "coffee")
        self.assertEqual(decoded.expiry_s, 600)
        self.assertEqual(decoded.payee, BOB_PUBKEY)
        self.assertAlmostEqual(decoded.timestamp, time.time(), delta=5)
        self.assertFalse(decoded.is_expired())
        self.assertEqual(decoded.payment_request, pr)

    def test_networks_from_the_prefix(self):
        for currency, network in (
            ("bcrt", "regtest"),
            ("bc", "mainnet"),
            ("tb", "testnet"),
            ("tbs", "signet"),
            ("sb", "simnet"),
        ):
            with self.subTest(currency=currency):
                pr, payment_hash = make_payment_request(currency=currency)
                decoded = bolt11.decode(pr)
                self.assertEqual(decoded.network, network)
                self.assertEqual(decoded.payment_hash, payment_hash)
                self.assertEqual(decoded.payee, BOB_PUBKEY)  # signature over the real HRP

    def test_zero_amount_invoice(self):
        pr, _ = make_payment_request(amount_msat=None)
        self.assertIsNone(bolt11.decode(pr).amount_msat)

    def test_sub_sat_amounts_are_exact(self):
        for msat in (1, 1_001, 123_456_789, 1_500):
            with self.subTest(msat=msat):
                pr, _ = make_payment_request(amount_msat=msat)
                self.assertEqual(bolt11.decode(pr).amount_msat, msat)

    def test_expired(self):
        pr, _ = expired_payment_request()
        self.assertTrue(bolt11.decode(pr).is_expired())

    def test_uppercase_and_lightning_prefix_accepted(self):
        pr, payment_hash = make_payment_request()
        self.assertEqual(bolt11.decode(pr.upper()).payment_hash, payment_hash)
        self.assertEqual(bolt11.decode("lightning:" + pr).payment_hash, payment_hash)

    def test_amount_field_parsing(self):
        self.assertEqual(bolt11.amount_msat_of("10u"), 1_000_000)
        self.assertEqual(bolt11.amount_msat_of("2500n"), 250_000)
        self.assertEqual(bolt11.amount_msat_of("10p"), 1)
        self.assertEqual(bolt11.amount_msat_of("1"), 100_000_000_000)
        self.assertIsNone(bolt11.amount_msat_of(""))
        for bad in ("1p", "15p", "0", "0u", "u", "1x", "1.5m"):
            with self.subTest(bad=bad), self.assertRaises(bolt11.InvalidPaymentRequest):
                bolt11.amount_msat_of(bad)

    def test_garbage_never_raises_anything_but_invalid(self):
        pr, _ = make_payment_request()
        flipped = pr[:40] + ("q" if pr[40] != "q" else "p") + pr[41:]
        cases = [
            "",
            "   ",
            "hello",
            "lnbcrt1",
            "lnxy1qqqq",
            "1" * 50,
            "ln" + "q" * 300,
            pr[:-1] + ("x" if pr[-1] != "x" else "y"),  # a wrong checksum character, whatever pr ends in
            flipped,
            pr[:120],
            "lnbcrt10u1" + "q" * 200,
            "lnbcrt1pé",
            "x" * 8000,
            pr + pr,
            "LnBcRt1" + pr[7:],
            "lnbc" + "1" * 10,
            "\x00" + pr,
        ]
        for text in cases:
            with self.subTest(text=text[:30]), self.assertRaises(bolt11.InvalidPaymentRequest):
                bolt11.decode(text)

    def test_non_string(self):
        with self.assertRaises(bolt11.InvalidPaymentRequest):
            bolt11.decode(12345)  # type: ignore[arg-type]

    def test_decoded_is_frozen(self):
        decoded = bolt11.decode(make_payment_request()[0])
        with self.assertRaises(AttributeError):
            decoded.amount_msat = 1  # type: ignore[misc]

    def test_hash_matches_preimage(self):
        preimage = b"\x01" * 32
        pr, _ = make_payment_request(payment_hash=hashlib.sha256(preimage).digest())
        self.assertEqual(bolt11.decode(pr).payment_hash, hashlib.sha256(preimage).digest())
