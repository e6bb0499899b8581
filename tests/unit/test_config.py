import os
import stat
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import pydantic

from shared.config import ConfigError, load_settings

STRONG = "s" * 40


def clean_env(**values: str) -> mock._patch:
    """The process environment with only ``values`` (and PATH) set."""
    return mock.patch.dict(os.environ, {"PATH": os.environ.get("PATH", ""), **values}, clear=True)


class SettingsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.run_dir = Path(tempfile.mkdtemp())
        self.cwd = os.getcwd()
        os.chdir(self.run_dir)  # no stray .env file is read

    def tearDown(self) -> None:
        os.chdir(self.cwd)

    def test_production_requires_jwt_secret(self):
        with (
            clean_env(ENVIRONMENT="production", PREIMAGE_SECRET=STRONG, WEBHOOK_SECRET_KEY=STRONG),
            self.assertRaises(ConfigError) as ctx,
        ):
            load_settings()
        self.assertIn("JWT_SECRET must be set", str(ctx.exception))

    def test_production_refuses_a_weak_secret(self):
        with clean_env(
            ENVIRONMENT="production", JWT_SECRET="x" * 31, PREIMAGE_SECRET=STRONG, WEBHOOK_SECRET_KEY=STRONG
        ):
            with self.assertRaises(ConfigError) as ctx:
                load_settings()
        self.assertIn("JWT_SECRET is too weak", str(ctx.exception))

    def test_production_with_strong_secrets_loads_and_hides_them(self):
        with clean_env(
            ENVIRONMENT="production",
            JWT_SECRET=STRONG,
            PREIMAGE_SECRET=STRONG,
            WEBHOOK_SECRET_KEY=STRONG,
            METRICS_TOKEN=STRONG,
            API_PORT="9100",
        ):
            settings = load_settings()
        self.assertEqual(settings.api_port, 9100)
        self.assertNotIn(STRONG, repr(settings))
        self.assertEqual(settings.jwt_key, STRONG.encode())

    def test_production_requires_a_strong_metrics_token(self):
        for value, expected in ((None, "METRICS_TOKEN must be set"), ("m" * 31, "METRICS_TOKEN is too weak")):
            values = {
                "ENVIRONMENT": "production",
                "JWT_SECRET": STRONG,
                "PREIMAGE_SECRET": STRONG,
                "WEBHOOK_SECRET_KEY": STRONG,
            }
            if value is not None:
                values["METRICS_TOKEN"] = value
            with self.subTest(value=value), clean_env(**values), self.assertRaises(ConfigError) as ctx:
                load_settings()
            self.assertIn(expected, str(ctx.exception))

    def test_development_leaves_metrics_open_and_api_single_process(self):
        with clean_env(RUN_DIR=str(self.run_dir)):
            settings = load_settings()
        self.assertIsNone(settings.metrics_token)
        self.assertEqual(settings.api_workers, 1)
        self.assertEqual((settings.worker_metrics_host, settings.worker_metrics_port), ("127.0.0.1", 9101))
        self.assertFalse((self.run_dir / "metrics_token.secret").exists())

    def test_bad_values_are_named_in_one_message(self):
        with clean_env(API_PORT="eighty", BCRYPT_COST="3", FEE_RESERVE_PPM="-1", RUN_DIR=str(self.run_dir)):
            with self.assertRaises(ConfigError) as ctx:
                load_settings()
        message = str(ctx.exception)
        for name in ("API_PORT", "BCRYPT_COST", "FEE_RESERVE_PPM"):
            self.assertIn(name, message)

    def test_settings_are_frozen(self):
        with clean_env(RUN_DIR=str(self.run_dir)):
            settings = load_settings()
        with self.assertRaises(pydantic.ValidationError):
            settings.api_port = 1  # type: ignore[misc]

    def test_development_generates_secrets_once_and_keeps_them_private(self):
        with clean_env(RUN_DIR=str(self.run_dir)):
            first = load_settings()
            second = load_settings()
        self.assertEqual(first.jwt_key, second.jwt_key)
        self.assertGreaterEqual(len(first.jwt_key), 32)
        secret_file = self.run_dir / "jwt_secret.secret"
        self.assertEqual(stat.S_IMODE(secret_file.stat().st_mode), 0o600)

    def test_weak_admin_key_is_refused_outside_development(self):
        with clean_env(
            ENVIRONMENT="production",
            JWT_SECRET=STRONG,
            PREIMAGE_SECRET=STRONG,
            WEBHOOK_SECRET_KEY=STRONG,
            METRICS_TOKEN=STRONG,
            ADMIN_KEY="short",
        ):
            with self.assertRaises(ConfigError) as ctx:
                load_settings()
        self.assertIn("ADMIN_KEY", str(ctx.exception))

    def test_unknown_environment_is_refused(self):
        with (
            clean_env(ENVIRONMENT="staging", RUN_DIR=str(self.run_dir)),
            self.assertRaises(ConfigError) as ctx,
        ):
            load_settings()
        self.assertIn("ENVIRONMENT", str(ctx.exception))


class WalletAppSettingsTest(unittest.TestCase):
    """PUBLIC_URL, LNDHUB_ALLOW_CREATE and LNDHUB_ACCESS_TOKEN_TTL (LndHub and Lightning Addresses)."""

    def setUp(self) -> None:
        self.cwd = os.getcwd()
        os.chdir(tempfile.mkdtemp())

    def tearDown(self) -> None:
        os.chdir(self.cwd)

    def load(self, **env: str):
        with clean_env(
            ENVIRONMENT="production",
            JWT_SECRET=STRONG,
            PREIMAGE_SECRET=STRONG,
            WEBHOOK_SECRET_KEY=STRONG,
            METRICS_TOKEN=STRONG,
            **env,
        ):
            return load_settings()

    def test_public_url_defaults_to_where_the_api_listens(self):
        self.assertEqual(
            self.load(API_HOST="10.0.0.5", API_PORT="9100").public_base_url, "http://10.0.0.5:9100"
        )
        self.assertEqual(self.load(API_HOST="::1").public_base_url, "http://[::1]:8000")
        settings = self.load(PUBLIC_URL="https://Wallet.example.com/base/")
        self.assertEqual(settings.public_base_url, "https://Wallet.example.com/base")

    def test_public_url_must_be_a_plain_http_url(self):
        for bad in (
            "ftp://x.example",
            "wallet.example.com",
            "https://",
            "https://x.example/?a=1",
            "https://u:p@x.example",
        ):
            with self.subTest(bad=bad), self.assertRaises(ConfigError) as ctx:
                self.load(PUBLIC_URL=bad)
            self.assertIn("PUBLIC_URL", str(ctx.exception))

    def test_lndhub_create_is_on_by_default_only_in_development(self):
        self.assertFalse(self.load().lndhub_create_allowed)
        self.assertTrue(self.load(LNDHUB_ALLOW_CREATE="true").lndhub_create_allowed)
        with clean_env():
            self.assertTrue(load_settings(run_dir=Path(tempfile.mkdtemp())).lndhub_create_allowed)
        with clean_env(LNDHUB_ALLOW_CREATE="false"):
            self.assertFalse(load_settings(run_dir=Path(tempfile.mkdtemp())).lndhub_create_allowed)

    def test_lndhub_token_ttl(self):
        self.assertEqual(self.load().lndhub_access_token_ttl, 2 * 24 * 3600)
        with self.assertRaises(ConfigError):
            self.load(LNDHUB_ACCESS_TOKEN_TTL="5")
