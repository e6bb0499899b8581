"""Password rules and bcrypt hashing off the event loop."""

import threading
import unittest
from unittest import mock

import aiounittest
import pydantic

from api_service.schemas.auth import RegisterRequest
from api_service.schemas.users import check_password
from api_service.services import passwords


class PasswordRuleTest(unittest.TestCase):
    def test_length_in_characters_and_bytes(self):
        self.assertEqual(check_password("abcdefgh"), "abcdefgh")
        self.assertEqual(check_password("é" * 36), "é" * 36)  # 72 bytes
        self.assertEqual(check_password("a" * 72), "a" * 72)
        for bad in ("abcdefg", "", "é" * 37, "a" * 73, "😀" * 19):  # 19 emoji = 76 bytes
            with self.assertRaises(ValueError, msg=bad):
                check_password(bad)

    def test_register_model_reports_the_byte_rule(self):
        with self.assertRaises(pydantic.ValidationError) as caught:
            RegisterRequest.model_validate({"username": "alice", "password": "é" * 37})
        self.assertIn("72 bytes", str(caught.exception))


class HashingTest(aiounittest.AsyncTestCase):
    async def test_hash_and_verify(self):
        hashed = await passwords.hash_password("correct horse", 4)
        self.assertTrue(hashed.startswith("$2b$04$"))
        self.assertTrue(await passwords.verify_password("correct horse", hashed))
        self.assertFalse(await passwords.verify_password("correct horsf", hashed))
        self.assertFalse(await passwords.verify_password("", hashed))

    async def test_multibyte_passwords(self):
        hashed = await passwords.hash_password("pässwörd€" * 4, 4)
        self.assertTrue(await passwords.verify_password("pässwörd€" * 4, hashed))
        self.assertFalse(await passwords.verify_password("passwörd€" * 4, hashed))

    async def test_over_72_bytes(self):
        with self.assertRaises(ValueError):
            await passwords.hash_password("é" * 37, 4)
        hashed = await passwords.hash_password("a" * 72, 4)
        # Never an exception on verify, and no silent truncation to a match.
        self.assertFalse(await passwords.verify_password("a" * 72 + "b", hashed))

    async def test_malformed_stored_hash_fails_closed(self):
        for bad in ("", "not a hash", "$2b$04$short", "ü"):
            self.assertFalse(await passwords.verify_password("correct horse", bad))

    async def test_dummy_hash_has_the_requested_cost_and_is_cached(self):
        first = await passwords.dummy_hash(5)
        self.assertTrue(first.startswith("$2b$05$"))
        self.assertEqual(await passwords.dummy_hash(5), first)
        self.assertFalse(await passwords.burn_verify("anything", 5))

    async def test_bcrypt_runs_in_the_bcrypt_pool_not_the_loop_thread(self):
        import bcrypt

        seen = []
        original = bcrypt.hashpw

        def spy(*args):
            seen.append(threading.current_thread().name)
            return original(*args)

        with mock.patch.object(bcrypt, "hashpw", spy):
            await passwords.hash_password("correct horse", 4)
        self.assertEqual(len(seen), 1)
        self.assertTrue(seen[0].startswith("bcrypt"), seen)
        self.assertNotEqual(seen[0], threading.current_thread().name)
