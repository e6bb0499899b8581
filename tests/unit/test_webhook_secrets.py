"""Webhook secrets: the Standard Webhooks format, sealed at rest, signatures a standard verifier accepts."""

from __future__ import annotations

import base64
import os
import unittest
import uuid
from datetime import UTC, datetime
from unittest import mock

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared.config import ConfigError, load_settings
from shared.webhook_secrets import SecretBox, new_secret, signature_header


class SecretFormatTest(unittest.TestCase):
    def test_whsec_and_at_least_24_random_bytes(self):
        first, second = new_secret(), new_secret()
        self.assertNotEqual(first, second)
        self.assertTrue(first.startswith("whsec_"))
        self.assertGreaterEqual(len(base64.b64decode(first.removeprefix("whsec_"))), 24)


class SecretBoxTest(unittest.TestCase):
    def test_sealed_secret_opens_only_for_its_owner_and_key(self):
        box, owner, other = SecretBox(b"k" * 32), uuid.uuid4(), uuid.uuid4()
        secret = new_secret()
        sealed = box.seal(owner, secret)
        self.assertNotIn(secret.encode(), sealed)
        self.assertNotIn(secret.removeprefix("whsec_").encode(), sealed)
        self.assertEqual(box.open(owner, sealed), secret)
        self.assertNotEqual(box.seal(owner, secret), sealed)  # a fresh nonce every time
        with self.assertRaises(ValueError):
            box.open(other, sealed)  # copied onto another user's row
        with self.assertRaises(ValueError):
            SecretBox(b"x" * 32).open(owner, sealed)
        with self.assertRaises(ValueError):
            box.open(owner, b"\x02" + sealed[1:])

    def test_the_key_is_required_and_strong_outside_development(self):
        base = {"PATH": os.environ.get("PATH", ""), "ENVIRONMENT": "production", "JWT_SECRET": "s" * 40,
                "PREIMAGE_SECRET": "s" * 40, "METRICS_TOKEN": "m" * 40}  # fmt: skip
        with mock.patch.dict(os.environ, base, clear=True), self.assertRaises(ConfigError) as ctx:
            load_settings()
        self.assertIn("WEBHOOK_SECRET_KEY must be set", str(ctx.exception))
        with mock.patch.dict(os.environ, {**base, "WEBHOOK_SECRET_KEY": "short"}, clear=True):
            with self.assertRaises(ConfigError) as ctx:
                load_settings()
        self.assertIn("WEBHOOK_SECRET_KEY is too weak", str(ctx.exception))
        with mock.patch.dict(os.environ, {**base, "WEBHOOK_SECRET_KEY": "w" * 40}, clear=True):
            settings = load_settings()
        self.assertNotIn("w" * 40, repr(settings))


class SignatureTest(unittest.TestCase):
    def test_a_standard_verifier_accepts_each_secret_and_refuses_a_changed_body(self):
        new, old = new_secret(), new_secret()
        body = '{"type":"invoice.settled","data":{"amountSat":21}}'
        now = datetime.now(UTC)
        headers = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header([new, old], "msg_1", now, body),
        }
        self.assertRegex(headers["webhook-signature"], r"^v1,[A-Za-z0-9+/=]{44} v1,[A-Za-z0-9+/=]{44}$")
        self.assertEqual(Webhook(new).verify(body, headers)["data"], {"amountSat": 21})
        Webhook(old).verify(body, headers)
        with self.assertRaises(WebhookVerificationError):
            Webhook(new).verify(body.replace("21", "22"), headers)
        with self.assertRaises(WebhookVerificationError):
            Webhook(new).verify(body, {**headers, "webhook-id": "msg_2"})
        with self.assertRaises(WebhookVerificationError):
            Webhook(new_secret()).verify(body, headers)
