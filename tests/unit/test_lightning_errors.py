"""The gRPC status/text -> LightningError mapping (shared.lightning.grpc_errors)."""

import unittest

import grpc

from shared.errors import (
    InvoiceAlreadyExists,
    LightningAuthError,
    LightningNotFound,
    LightningRequestError,
    LightningUnavailable,
    PaymentAlreadySucceeded,
    PaymentInFlight,
)
from shared.lightning.grpc_errors import map_rpc_error, map_status

C = grpc.StatusCode


class MapStatusTest(unittest.TestCase):
    def check(self, code, text, expected):
        err = map_status(code, text)
        self.assertIsInstance(err, expected, f"{code} {text!r} -> {type(err).__name__}")
        self.assertEqual(err.grpc_code, code.name)
        self.assertEqual(err.message, text)

    def test_transport_and_deadline_are_unavailable(self):
        for code in (C.UNAVAILABLE, C.DEADLINE_EXCEEDED, C.CANCELLED, C.INTERNAL, C.RESOURCE_EXHAUSTED):
            self.check(code, "failed to connect to all addresses", LightningUnavailable)

    def test_tls_failure_is_auth(self):
        self.check(
            C.UNAVAILABLE,
            "failed to connect: Ssl handshake failed: CERTIFICATE_VERIFY_FAILED",
            LightningAuthError,
        )

    def test_not_found(self):
        self.check(C.NOT_FOUND, "unable to locate invoice", LightningNotFound)
        self.check(C.NOT_FOUND, "payment isn't initiated", LightningNotFound)
        self.check(C.UNKNOWN, "unable to locate invoice", LightningNotFound)  # older LND
        self.check(C.UNKNOWN, "there are no existing invoices", LightningNotFound)

    def test_already_exists(self):
        self.check(C.ALREADY_EXISTS, "invoice is already paid", PaymentAlreadySucceeded)
        self.check(C.ALREADY_EXISTS, "payment is in transition", PaymentInFlight)
        self.check(C.ALREADY_EXISTS, "payment already exists", PaymentInFlight)
        self.check(C.UNKNOWN, "invoice is already paid", PaymentAlreadySucceeded)
        self.check(C.UNKNOWN, "payment is in transition", PaymentInFlight)

    def test_invoice_exists(self):
        self.check(C.UNKNOWN, "invoice with payment hash already exists", InvoiceAlreadyExists)

    def test_macaroon_texts_are_auth(self):
        for text in (
            "expected 1 macaroon, got 0",
            "verification failed: signature mismatch after caveat verification",
            "cannot get macaroon: root key with id 0 doesn't exist",
            "encoding/hex: invalid byte: U+0067 'g'",
            "permission denied",
        ):
            self.check(C.UNKNOWN, text, LightningAuthError)
        self.check(C.UNAUTHENTICATED, "x", LightningAuthError)
        self.check(C.PERMISSION_DENIED, "x", LightningAuthError)

    def test_wallet_locked_is_unavailable(self):
        self.check(C.UNKNOWN, "wallet locked, unlock it to enable full RPC access", LightningUnavailable)

    def test_validation_errors_are_request_errors(self):
        for text in (
            "self-payments not allowed",
            "invoice expired. Valid until 2024-01-01 00:00:00 +0000 UTC",
            "invoice not for current active network 'regtest'",
            "amount must be specified when paying a zero amount invoice",
            "checksum failed",
        ):
            self.check(C.UNKNOWN, text, LightningRequestError)
        self.check(C.INVALID_ARGUMENT, "bad", LightningRequestError)
        self.check(C.UNIMPLEMENTED, "unknown method", LightningRequestError)

    def test_non_grpc_exception_is_unavailable(self):
        self.assertIsInstance(map_rpc_error(OSError("boom")), LightningUnavailable)
        already = LightningNotFound("x")
        self.assertIs(map_rpc_error(already), already)
