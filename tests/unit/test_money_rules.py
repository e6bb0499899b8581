"""The money core's pure rules, pinned at their edges: the fee reserve (integer, rounded up to whole
sats, the minimum dominating small amounts), the caller's fee-limit ceiling, and decode_request's
validation (each refusal names its field; the limits are inclusive where the docs say so).

Written against surviving mutants of shared/ledger.py and api_service/services/payments.py: every
assertion here fails for at least one mutant the API tests let through."""

from __future__ import annotations

import unittest
from types import SimpleNamespace

from api_service.schemas.wallet import CreatePaymentBody
from api_service.services.payments import decode_request, max_fee_limit_sat
from shared import ledger
from shared.errors import InvoiceExpired, ValidationError
from tests.support.bolt11_factory import expired_payment_request, make_payment_request
from tests.support.env import make_settings


class FeeReserveTest(unittest.TestCase):
    def test_the_minimum_dominates_a_small_amount(self):
        # 1 sat at 1 % is 10 msat; the 10 sat minimum wins.
        self.assertEqual(ledger.fee_reserve_msat(1_000, ppm=10_000, min_sat=10), 10_000)
        self.assertEqual(ledger.fee_reserve_msat(1, ppm=0, min_sat=3), 3_000)

    def test_the_proportional_part_wins_above_the_minimum(self):
        self.assertEqual(ledger.fee_reserve_msat(5_000_000, ppm=10_000, min_sat=10), 50_000)

    def test_the_proportional_part_is_rounded_up_then_to_whole_sats(self):
        # 1_000_001_000 msat at 1000 ppm is exactly 1_000_001 msat: one msat over 1000 sat → 1001 sat.
        reserve = ledger.fee_reserve_msat(1_000_001_000, ppm=1_000, min_sat=0)
        self.assertEqual(reserve, 1_001_000)
        self.assertIs(type(reserve), int)
        # 1 msat at 1 ppm is a millionth of a msat: still one whole sat, never zero.
        self.assertEqual(ledger.fee_reserve_msat(1, ppm=1, min_sat=0), 1_000)
        # Exactly on a sat boundary: no extra sat.
        self.assertEqual(ledger.fee_reserve_msat(1_000_000_000, ppm=1_000, min_sat=0), 1_000_000)

    def test_the_result_is_always_an_int(self):
        for amount_msat, ppm, min_sat in [(1, 1, 0), (999_999, 7, 1), (10**15, 10_000, 10), (0, 0, 0)]:
            with self.subTest(amount_msat=amount_msat, ppm=ppm, min_sat=min_sat):
                reserve = ledger.fee_reserve_msat(amount_msat, ppm=ppm, min_sat=min_sat)
                self.assertIs(type(reserve), int)
                self.assertEqual(reserve % 1000, 0)

    def test_huge_amounts_stay_exact(self):
        # 21 M BTC in msat at 1 %: a float would lose the last digits.
        amount_msat = 2_100_000_000_000_000_000 + 1_000
        self.assertEqual(
            ledger.fee_reserve_msat(amount_msat, ppm=10_000, min_sat=0), 21_000_000_000_000_000 + 1_000
        )


class MaxFeeLimitTest(unittest.TestCase):
    def test_ten_percent_rounded_up_plus_one_hundred_sat(self):
        self.assertEqual(max_fee_limit_sat(10_000), 101)  # 10 sat: 1 sat + 100
        self.assertEqual(max_fee_limit_sat(1), 101)  # a millionth of a sat still rounds up
        self.assertEqual(max_fee_limit_sat(0), 100)
        self.assertEqual(max_fee_limit_sat(1_000_000), 200)  # 1000 sat: exactly 100 + 100
        self.assertEqual(max_fee_limit_sat(1_000_001), 201)
        self.assertIs(type(max_fee_limit_sat(1_000_001)), int)


def _deps(**overrides: object) -> SimpleNamespace:
    return SimpleNamespace(settings=make_settings(**overrides))


def _body(payment_request: str, **fields: object) -> CreatePaymentBody:
    return CreatePaymentBody.model_validate({"paymentRequest": payment_request, **fields})


class DecodeRequestTest(unittest.TestCase):
    def refusal(self, body: CreatePaymentBody, **settings: object) -> tuple[str, str]:
        with self.assertRaises(ValidationError) as caught:
            decode_request(_deps(**settings), body)
        error = caught.exception
        self.assertEqual(error.code, "VALIDATION_ERROR")
        [detail] = error.details
        self.assertEqual(detail["message"], error.message)
        return detail["field"], error.message

    def test_an_invoice_with_an_amount(self):
        pr, payment_hash = make_payment_request(amount_msat=12_345)
        decoded, amount_msat = decode_request(_deps(), _body(pr))
        self.assertEqual((decoded.payment_hash, amount_msat), (payment_hash, 12_345))

    def test_a_zero_amount_invoice_takes_amount_sat_in_sat(self):
        pr, _ = make_payment_request(amount_msat=None)
        _decoded, amount_msat = decode_request(_deps(), _body(pr, amountSat=7))
        self.assertEqual(amount_msat, 7_000)

    def test_a_garbled_request_names_the_field(self):
        field, message = self.refusal(_body("lnbcrt1garbage"))
        self.assertEqual(field, "paymentRequest")
        self.assertTrue(message.startswith("invalid payment request: "), message)

    def test_another_network_names_both(self):
        pr, _ = make_payment_request(currency="tb")
        field, message = self.refusal(_body(pr))
        self.assertEqual(field, "paymentRequest")
        self.assertEqual(message, "the invoice is for testnet, this node runs on regtest")

    def test_a_zero_amount_invoice_without_amount_sat(self):
        pr, _ = make_payment_request(amount_msat=None)
        self.assertEqual(
            self.refusal(_body(pr)),
            ("amountSat", "amountSat is required for an invoice without an amount"),
        )

    def test_amount_sat_with_an_invoice_that_has_an_amount(self):
        pr, _ = make_payment_request(amount_msat=10_000)
        self.assertEqual(
            self.refusal(_body(pr, amountSat=10)),
            ("amountSat", "amountSat must not be given: the invoice has an amount"),
        )

    def test_the_amount_must_be_positive(self):
        pr, _ = make_payment_request(amount_msat=None)
        for amount_sat in (0, -1):
            with self.subTest(amount_sat=amount_sat):
                refusal = self.refusal(_body(pr, amountSat=amount_sat))
                self.assertEqual(refusal, ("amountSat", "the amount must be positive"))

    def test_one_msat_is_a_positive_amount(self):
        pr, _ = make_payment_request(amount_msat=1)
        self.assertEqual(decode_request(_deps(), _body(pr))[1], 1)

    def test_the_maximum_is_inclusive(self):
        pr, _ = make_payment_request(amount_msat=None)
        _decoded, amount_msat = decode_request(_deps(max_payment_sat=500), _body(pr, amountSat=500))
        self.assertEqual(amount_msat, 500_000)
        self.assertEqual(
            self.refusal(_body(pr, amountSat=501), max_payment_sat=500),
            ("amountSat", "the amount must be at most 500 sat"),
        )
        # One msat over the maximum, from the invoice's own amount.
        over, _ = make_payment_request(amount_msat=500_001)
        self.assertEqual(self.refusal(_body(over), max_payment_sat=500)[0], "amountSat")
        exact, _ = make_payment_request(amount_msat=500_000)
        self.assertEqual(decode_request(_deps(max_payment_sat=500), _body(exact))[1], 500_000)

    def test_an_expired_invoice_is_422_after_the_amount_checks(self):
        pr, _ = expired_payment_request(amount_msat=10_000)
        with self.assertRaises(InvoiceExpired):
            decode_request(_deps(), _body(pr))
        # A bad amount is reported first, even on an expired invoice.
        self.assertEqual(self.refusal(_body(pr, amountSat=1))[0], "amountSat")

    def test_the_fee_limit_ceiling_is_inclusive(self):
        pr, _ = make_payment_request(amount_msat=10_000)  # ceiling: 1 + 100 sat
        self.assertEqual(decode_request(_deps(), _body(pr, feeLimitSat=101))[1], 10_000)
        self.assertEqual(decode_request(_deps(), _body(pr, feeLimitSat=0))[1], 10_000)
        self.assertEqual(
            self.refusal(_body(pr, feeLimitSat=102)),
            ("feeLimitSat", "feeLimitSat must be at most 101 for this amount"),
        )

    def test_the_fee_limit_ceiling_follows_the_amount_sat_of_a_zero_amount_invoice(self):
        pr, _ = make_payment_request(amount_msat=None)
        # 5000 sat → 500 + 100 sat.
        self.assertEqual(decode_request(_deps(), _body(pr, amountSat=5_000, feeLimitSat=600))[1], 5_000_000)
        self.assertEqual(self.refusal(_body(pr, amountSat=5_000, feeLimitSat=601))[0], "feeLimitSat")


if __name__ == "__main__":
    unittest.main()
