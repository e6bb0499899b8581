"""shared.bolt11: decoding into our value type, networks, amounts, expiry, and refusing bad input."""

import hashlib
import os
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


class PackageAgreementTests(unittest.TestCase):
    """Our field reader against the ``bolt11`` package's decoder, on the same signed strings."""

    def test_same_fields_as_the_bolt11_package(self):
        import bolt11 as package
        from bolt11 import Bolt11, MilliSatoshi
        from bolt11.models.tags import TagChar, Tags

        def signed(*, description=None, description_hash=None, payee=False, expiry=None, cltv=None):
            tags = Tags()
            tags.add(TagChar.payment_hash, os.urandom(32).hex())
            tags.add(TagChar.payment_secret, os.urandom(32).hex())
            if description is not None:
                tags.add(TagChar.description, description)
            if description_hash is not None:
                tags.add(TagChar.description_hash, description_hash.hex())
            if expiry is not None:
                tags.add(TagChar.expire_time, expiry)
            if cltv is not None:
                tags.add(TagChar.min_final_cltv_expiry, cltv)
            if payee:
                tags.add(TagChar.payee, BOB_PUBKEY)
            invoice = Bolt11(currency="bcrt", date=1_700_000_000, amount_msat=MilliSatoshi(21_000), tags=tags)
            return package.encode(invoice, BOB_PRIVKEY)

        cases = [make_payment_request(description=d)[0] for d in ("", "café ☕ " * 30, "x" * 639)]
        cases += [make_payment_request(amount_msat=None, expiry_s=1)[0]]
        cases += [
            signed(description="plain"),
            signed(description_hash=hashlib.sha256(b"metadata").digest(), expiry=86_400, cltv=144),
            signed(description="with n", payee=True, expiry=7 * 86_400),
        ]
        for pr in cases:
            with self.subTest(pr=pr[:40]):
                ours, theirs = bolt11.decode(pr), package.decode(pr)
                self.assertEqual(ours.payment_hash.hex(), theirs.payment_hash)
                self.assertEqual(ours.timestamp, theirs.date)
                self.assertEqual(ours.expiry_s, theirs.expiry)
                self.assertEqual(ours.description, theirs.description)
                self.assertEqual(
                    ours.description_hash.hex() if ours.description_hash else None, theirs.description_hash
                )
                self.assertEqual(ours.payee, theirs.payee)
                self.assertEqual(ours.min_final_cltv_expiry, theirs.min_final_cltv_expiry)

    def test_the_signature_is_checked_against_n_when_present(self):
        import bolt11 as package

        with_n = self.with_payee_field(make_payment_request()[0], signer=BOB_PRIVKEY)
        self.assertEqual(bolt11.decode(with_n).payee, BOB_PUBKEY)
        self.assertEqual(package.decode(with_n).payee, BOB_PUBKEY)
        forged = self.with_payee_field(make_payment_request()[0], signer="11" * 32)
        with self.assertRaises(Exception):  # noqa: B017 - the package has its own exception types
            package.decode(forged)
        with self.assertRaises(bolt11.InvalidPaymentRequest) as caught:
            bolt11.decode(forged)
        self.assertIn("signature", str(caught.exception))

    @staticmethod
    def with_payee_field(pr: str, *, signer: str) -> str:
        """``pr`` with an ``n`` field naming Bob, signed again by ``signer``."""
        from bech32 import CHARSET, bech32_decode, bech32_encode, convertbits

        hrp, words = bech32_decode(pr)
        payee = convertbits(bytes.fromhex(BOB_PUBKEY), 8, 5)
        data = [*words[:-104], CHARSET.index("n"), len(payee) // 32, len(payee) % 32, *payee]
        bits = 5 * len(data)
        signed = int("".join(f"{w:05b}" for w in data), 2) << (-bits % 8)
        message = hrp.encode() + signed.to_bytes((bits + 7) // 8, "big")
        signature = PrivateKey.from_hex(signer).sign_recoverable(message)
        return bech32_encode(hrp, data + convertbits(signature, 8, 5))
