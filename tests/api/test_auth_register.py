"""POST /api/v1/auth/register: validation, admin bootstrap, case-insensitive uniqueness, ledger account."""

from sqlalchemy import select

from shared.db.models import Account, User
from tests.api.test_users_access import USER_KEYS
from tests.support import env
from tests.support.cases import ApiCase

URL = "/api/v1/auth/register"


async def error_of(test, response, status, code):
    test.assertEqual(response.status, status, await response.text())
    body = await response.json()
    test.assertIs(body["success"], False)
    test.assertEqual(body["error"]["code"], code)
    test.assertIn("requestId", body["meta"])
    return body["error"]


class RegisterTest(ApiCase):
    async def test_register_returns_user_and_token_pair(self):
        response = await self.client.post(URL, json={"username": "Alice_1", "password": "correct horse"})
        self.assertEqual(response.status, 201)
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        body = await response.json()
        self.assertTrue(body["success"])
        data = body["data"]
        self.assertEqual(set(data), {"user", "accessToken", "refreshToken", "expiresIn"})
        self.assertEqual(set(data["user"]), USER_KEYS)
        self.assertEqual(data["user"]["username"], "Alice_1")  # case preserved
        self.assertEqual(data["user"]["role"], "user")
        self.assertTrue(data["user"]["isActive"])
        self.assertIsNone(data["user"]["lastLoginAt"])
        self.assertEqual(data["expiresIn"], self.settings.access_token_ttl)
        self.assertGreaterEqual(len(data["refreshToken"]), 43)  # 32 random bytes, base64url
        raw = await response.text()
        self.assertNotIn("$2b$", raw)
        self.assertNotIn("password", raw.lower())

        me = await self.client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {data['accessToken']}"}
        )
        self.assertEqual((await me.json())["data"]["id"], data["user"]["id"])

    async def test_user_and_ledger_account_are_created_together(self):
        response = await self.client.post(URL, json={"username": "bob", "password": "correct horse"})
        user_id = (await response.json())["data"]["user"]["id"]
        async with self.sessions() as session:
            user = await session.scalar(select(User).where(User.username == "bob"))
            account = await session.scalar(select(Account).where(Account.user_id == user.id))
        self.assertEqual(str(user.id), user_id)
        self.assertTrue(user.password_hash.startswith("$2b$04$"))  # settings.bcrypt_cost
        self.assertEqual((account.kind, account.balance_msat), ("user", 0))

    async def test_admin_key_grants_admin(self):
        response = await self.client.post(
            URL, json={"username": "root", "password": "correct horse", "adminKey": env.TEST_ADMIN_KEY}
        )
        self.assertEqual(response.status, 201)
        self.assertEqual((await response.json())["data"]["user"]["role"], "admin")

    async def test_wrong_admin_key_is_forbidden_and_creates_nothing(self):
        for key in ("wrong", env.TEST_ADMIN_KEY + "x", ""):
            response = await self.client.post(
                URL, json={"username": "mallory", "password": "correct horse", "adminKey": key}
            )
            await error_of(self, response, 403, "FORBIDDEN")
        async with self.sessions() as session:
            self.assertIsNone(await session.scalar(select(User).where(User.username == "mallory")))

    async def test_null_admin_key_is_a_normal_registration(self):
        response = await self.client.post(
            URL, json={"username": "carol", "password": "correct horse", "adminKey": None}
        )
        self.assertEqual((await response.json())["data"]["user"]["role"], "user")

    async def test_duplicate_username_in_another_case_is_409(self):
        await self.client.post(URL, json={"username": "Dave", "password": "correct horse"})
        for name in ("Dave", "dave", "DAVE"):
            response = await self.client.post(URL, json={"username": name, "password": "other password"})
            await error_of(self, response, 409, "USERNAME_TAKEN")

    async def test_concurrent_duplicate_registrations_create_one_user(self):
        import asyncio

        responses = await asyncio.gather(
            *(
                self.client.post(
                    URL, json={"username": f"Race{'x' if i % 2 else 'X'}", "password": "correct horse"}
                )
                for i in range(6)
            )
        )
        statuses = sorted(r.status for r in responses)
        self.assertEqual(statuses, [201, 409, 409, 409, 409, 409])

    async def test_password_length_is_counted_in_utf8_bytes(self):
        seventy_two = "é" * 36  # 36 characters, 72 bytes: the most bcrypt reads
        response = await self.client.post(URL, json={"username": "erin", "password": seventy_two})
        self.assertEqual(response.status, 201)
        seventy_four = "é" * 37  # 37 characters (< 72) but 74 bytes
        response = await self.client.post(URL, json={"username": "erin2", "password": seventy_four})
        error = await error_of(self, response, 400, "VALIDATION_ERROR")
        self.assertEqual([d["field"] for d in error["details"]], ["password"])
        self.assertIn("72 bytes", error["details"][0]["message"])
        response = await self.client.post(URL, json={"username": "erin3", "password": "a" * 72 + "b"})
        await error_of(self, response, 400, "VALIDATION_ERROR")

    async def test_short_password_is_refused(self):
        response = await self.client.post(URL, json={"username": "frank", "password": "1234567"})
        error = await error_of(self, response, 400, "VALIDATION_ERROR")
        self.assertEqual(error["details"][0]["field"], "password")

    async def test_every_field_error_is_listed(self):
        response = await self.client.post(URL, json={"username": "x", "password": 12345678, "extra": 1})
        error = await error_of(self, response, 400, "VALIDATION_ERROR")
        self.assertEqual(sorted(d["field"] for d in error["details"]), ["extra", "password", "username"])

    async def test_missing_fields(self):
        response = await self.client.post(URL, json={})
        error = await error_of(self, response, 400, "VALIDATION_ERROR")
        self.assertEqual(sorted(d["field"] for d in error["details"]), ["password", "username"])
        self.assertTrue(all(d["type"] == "missing" for d in error["details"]))

    async def test_wrong_types(self):
        for body in (
            {"username": 5, "password": "correct horse"},
            {"username": ["a"], "password": "correct horse"},
            {"username": "gina", "password": None},
            {"username": "gina", "password": True},
            {"username": "gina", "password": "correct horse", "adminKey": 7},
        ):
            response = await self.client.post(URL, json=body)
            await error_of(self, response, 400, "VALIDATION_ERROR")

    async def test_sql_looking_and_unicode_usernames_are_400(self):
        names = [
            "x'; DROP TABLE users;--",
            "admin' OR '1'='1",
            'a"b',
            "a b",
            "ålice",
            "名前名前",
            "emoji😀",
            "a\u0000b",
            "ab",
            "a" * 33,
            "",
            "%_%",
            "robert\n",
            "\u0430dmin",
        ]
        for name in names:
            response = await self.client.post(URL, json={"username": name, "password": "correct horse"})
            error = await error_of(self, response, 400, "VALIDATION_ERROR")
            self.assertEqual(error["details"][0]["field"], "username", name)
        async with self.sessions() as session:
            self.assertEqual((await session.scalars(select(User))).all(), [])

    async def test_allowed_username_alphabet(self):
        for name in ("a.b-c_d", "ABC", "x" * 32, "123"):
            response = await self.client.post(URL, json={"username": name, "password": "correct horse"})
            self.assertEqual(response.status, 201, name)


class RegisterWithoutAdminKeyTest(ApiCase):
    settings_overrides = {"admin_key": None}

    async def test_any_admin_key_is_forbidden_when_none_is_configured(self):
        for key in ("anything-at-all-here", ""):
            response = await self.client.post(
                URL, json={"username": "root", "password": "correct horse", "adminKey": key}
            )
            await error_of(self, response, 403, "FORBIDDEN")
        response = await self.client.post(URL, json={"username": "root", "password": "correct horse"})
        self.assertEqual(response.status, 201)
