"""/api/v1/users: me, admin listing and search, read/update/deactivate with the access rules."""

import uuid

from sqlalchemy import select

from api_service.services import passwords
from shared.db.models import Account, RefreshToken, User
from tests.support.cases import ApiCase
from tests.support.factories import DEFAULT_PASSWORD, auth_headers, create_user

USERS = "/api/v1/users"
USER_KEYS = {
    "id",
    "username",
    "role",
    "isActive",
    "createdAt",
    "updatedAt",
    "lastLoginAt",
    "lightningAddress",
}


async def error_of(test, response, status, code):
    test.assertEqual(response.status, status, await response.text())
    body = await response.json()
    test.assertIs(body["success"], False)
    test.assertEqual(body["error"]["code"], code)
    return body["error"]


class UsersCase(ApiCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.admin_id = await create_user(self.sessions, username="root", role="admin")
        self.alice_id = await create_user(self.sessions, username="alice")
        self.bob_id = await create_user(self.sessions, username="bob")
        self.admin = auth_headers(self.settings, self.admin_id, "admin")
        self.alice = auth_headers(self.settings, self.alice_id)
        self.bob = auth_headers(self.settings, self.bob_id)

    async def login(self, username, password=DEFAULT_PASSWORD):
        return await self.client.post("/api/v1/auth/login", json={"username": username, "password": password})

    async def data(self, response, status=200):
        self.assertEqual(response.status, status, await response.text())
        return (await response.json())["data"]


class ReadUsersTest(UsersCase):
    async def test_me(self):
        data = await self.data(await self.client.get(f"{USERS}/me", headers=self.alice))
        self.assertEqual(set(data), USER_KEYS)
        self.assertEqual((data["id"], data["username"], data["role"]), (str(self.alice_id), "alice", "user"))
        # PUBLIC_URL unset: the address's host is API_HOST:API_PORT
        self.assertEqual(data["lightningAddress"], "alice@127.0.0.1:8000")

    async def test_unauthenticated(self):
        for path in (f"{USERS}/me", USERS, f"{USERS}/{self.alice_id}"):
            await error_of(self, await self.client.get(path), 401, "UNAUTHORIZED")

    async def test_admin_lists_with_pagination(self):
        for i in range(4):
            await create_user(self.sessions, username=f"extra{i}")
        response = await self.client.get(USERS, params={"page": "2", "pageSize": "3"}, headers=self.admin)
        body = await response.json()
        self.assertEqual(response.status, 200)
        self.assertEqual(body["pagination"], {"page": 2, "pageSize": 3, "totalItems": 7, "totalPages": 3})
        self.assertEqual(len(body["data"]), 3)
        self.assertTrue(all(set(item) == USER_KEYS for item in body["data"]))
        names = []
        for page in (1, 2, 3):
            r = await self.client.get(USERS, params={"page": str(page), "pageSize": "3"}, headers=self.admin)
            names += [u["username"] for u in (await r.json())["data"]]
        self.assertEqual(len(names), 7)
        self.assertEqual(len(set(names)), 7)

    async def test_search_is_case_insensitive_and_literal(self):
        await create_user(self.sessions, username="Alicia")
        await create_user(self.sessions, username="x_y")
        await create_user(self.sessions, username="xay")

        async def search(q):
            r = await self.client.get(USERS, params={"q": q}, headers=self.admin)
            self.assertEqual(r.status, 200, await r.text())
            return sorted(u["username"] for u in (await r.json())["data"])

        self.assertEqual(await search("ALI"), ["Alicia", "alice"])
        self.assertEqual(await search("x_y"), ["x_y"])  # "_" is not a wildcard
        self.assertEqual(await search("%"), [])
        self.assertEqual(await search("\\"), [])
        self.assertEqual(await search("' OR '1'='1"), [])
        self.assertEqual(await search("名前"), [])

    async def test_list_query_validation(self):
        for params in (
            {"pageSize": "101"},
            {"page": "0"},
            {"page": "x"},
            {"q": "a" * 65},
            {"sort": "id"},
            {"q": "a\x00"},
        ):
            response = await self.client.get(USERS, params=params, headers=self.admin)
            await error_of(self, response, 400, "VALIDATION_ERROR")

    async def test_non_admin_cannot_list(self):
        await error_of(self, await self.client.get(USERS, headers=self.alice), 403, "FORBIDDEN")

    async def test_get_user_admin_or_self(self):
        data = await self.data(await self.client.get(f"{USERS}/{self.alice_id}", headers=self.admin))
        self.assertEqual(data["username"], "alice")
        data = await self.data(await self.client.get(f"{USERS}/{self.alice_id}", headers=self.alice))
        self.assertEqual(data["username"], "alice")

    async def test_other_users_and_unknown_ids_look_alike(self):
        other = await error_of(
            self, await self.client.get(f"{USERS}/{self.bob_id}", headers=self.alice), 404, "NOT_FOUND"
        )
        unknown = await error_of(
            self, await self.client.get(f"{USERS}/{uuid.uuid4()}", headers=self.alice), 404, "NOT_FOUND"
        )
        self.assertEqual(other, unknown)
        await error_of(
            self, await self.client.get(f"{USERS}/{uuid.uuid4()}", headers=self.admin), 404, "NOT_FOUND"
        )

    async def test_malformed_ids_are_404(self):
        for bad in ("not-a-uuid", "1", "1%20OR%201=1", "%27", "00000000-0000-0000-0000-00000000000g"):
            await error_of(
                self, await self.client.get(f"{USERS}/{bad}", headers=self.admin), 404, "NOT_FOUND"
            )


class UpdateUsersTest(UsersCase):
    async def patch(self, user_id, body, headers, method="patch"):
        return await getattr(self.client, method)(f"{USERS}/{user_id}", json=body, headers=headers)

    async def test_user_renames_itself(self):
        data = await self.data(await self.patch(self.alice_id, {"username": "Alice.New"}, self.alice))
        self.assertEqual(data["username"], "Alice.New")
        self.assertGreater(data["updatedAt"], data["createdAt"])
        self.assertEqual((await self.login("alice.new")).status, 200)
        self.assertEqual((await self.login("alice")).status, 401)

    async def test_case_only_rename_of_oneself_is_allowed(self):
        data = await self.data(await self.patch(self.alice_id, {"username": "ALICE"}, self.alice))
        self.assertEqual(data["username"], "ALICE")

    async def test_put_is_a_partial_update_too(self):
        data = await self.data(
            await self.patch(self.alice_id, {"username": "alice2"}, self.alice, method="put")
        )
        self.assertEqual((data["username"], data["role"]), ("alice2", "user"))

    async def test_rename_to_a_taken_name_is_409(self):
        for name in ("bob", "BOB"):
            await error_of(
                self, await self.patch(self.alice_id, {"username": name}, self.alice), 409, "USERNAME_TAKEN"
            )
        await error_of(
            self, await self.patch(self.alice_id, {"username": "Root"}, self.admin), 409, "USERNAME_TAKEN"
        )

    async def test_user_cannot_touch_role_or_active_flag(self):
        for body in (
            {"role": "admin"},
            {"isActive": False},
            {"role": "user"},
            {"username": "x1x", "role": "admin"},
        ):
            await error_of(self, await self.patch(self.alice_id, body, self.alice), 403, "FORBIDDEN")
        async with self.sessions() as session:
            user = await session.get(User, self.alice_id)
        self.assertEqual((user.username, user.role, user.is_active), ("alice", "user", True))

    async def test_user_cannot_edit_another_user(self):
        for body in ({"username": "hacked"}, {"password": "new password"}, {"role": "admin"}):
            await error_of(self, await self.patch(self.bob_id, body, self.alice), 404, "NOT_FOUND")
        await error_of(
            self, await self.patch(uuid.uuid4(), {"username": "x1x"}, self.alice), 404, "NOT_FOUND"
        )
        await error_of(self, await self.patch("nope", {"username": "x1x"}, self.alice), 404, "NOT_FOUND")

    async def test_update_validation(self):
        for body in (
            {},
            {"username": None},
            {"username": "a b"},
            {"username": "ålice"},
            {"password": "short"},
            {"password": "é" * 37, "currentPassword": DEFAULT_PASSWORD},
            {"role": "superuser"},
            {"isActive": "maybe"},
            {"currentPassword": DEFAULT_PASSWORD},
            {"email": "a@b.c"},
            {"password_hash": "$2b$04$x"},
        ):
            await error_of(self, await self.patch(self.alice_id, body, self.alice), 400, "VALIDATION_ERROR")
        for body in ({"role": None}, {"isActive": None}, {"role": "owner"}):
            await error_of(self, await self.patch(self.alice_id, body, self.admin), 400, "VALIDATION_ERROR")

    async def test_own_password_change_needs_the_current_password(self):
        await error_of(
            self,
            await self.patch(self.alice_id, {"password": "brand new pass"}, self.alice),
            400,
            "VALIDATION_ERROR",
        )
        await error_of(
            self,
            await self.patch(
                self.alice_id, {"password": "brand new pass", "currentPassword": "wrong one"}, self.alice
            ),
            401,
            "INVALID_CREDENTIALS",
        )
        self.assertEqual((await self.login("alice")).status, 200)

    async def test_password_change_revokes_refresh_tokens(self):
        session_a = await self.data(await self.login("alice"))
        response = await self.patch(
            self.alice_id, {"password": "brand new pass", "currentPassword": DEFAULT_PASSWORD}, self.alice
        )
        await self.data(response)
        await error_of(
            self,
            await self.client.post("/api/v1/auth/refresh", json={"refreshToken": session_a["refreshToken"]}),
            401,
            "UNAUTHORIZED",
        )
        self.assertEqual((await self.login("alice")).status, 401)
        self.assertEqual((await self.login("alice", "brand new pass")).status, 200)

    async def test_admin_changes_everything_of_another_user(self):
        await self.data(await self.login("alice"))
        body = {"username": "alice_admin", "role": "admin", "password": "set by admin"}
        data = await self.data(await self.patch(self.alice_id, body, self.admin))
        self.assertEqual((data["username"], data["role"]), ("alice_admin", "admin"))
        self.assertEqual((await self.login("alice_admin", "set by admin")).status, 200)
        async with self.sessions() as session:
            tokens = (
                await session.scalars(
                    select(RefreshToken)
                    .where(RefreshToken.user_id == self.alice_id)
                    .order_by(RefreshToken.created_at)
                )
            ).all()
        self.assertEqual([t.revoked_at is not None for t in tokens], [True, False])
        # Her admin rights apply at once (role read from the database).
        self.assertEqual((await self.client.get(USERS, headers=self.alice)).status, 200)

    async def test_admin_deactivates_and_reactivates(self):
        tokens = await self.data(await self.login("alice"))
        data = await self.data(await self.patch(self.alice_id, {"isActive": False}, self.admin))
        self.assertFalse(data["isActive"])
        await error_of(self, await self.client.get(f"{USERS}/me", headers=self.alice), 401, "UNAUTHORIZED")
        await error_of(
            self,
            await self.client.post("/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]}),
            401,
            "UNAUTHORIZED",
        )
        await self.data(await self.patch(self.alice_id, {"isActive": True}, self.admin))
        self.assertEqual((await self.client.get(f"{USERS}/me", headers=self.alice)).status, 200)

    async def test_admin_cannot_demote_or_deactivate_itself(self):
        for body in ({"role": "user"}, {"isActive": False}):
            await error_of(self, await self.patch(self.admin_id, body, self.admin), 409, "CONFLICT")
        data = await self.data(await self.patch(self.admin_id, {"username": "root2"}, self.admin))
        self.assertEqual(data["role"], "admin")


class DeleteUsersTest(UsersCase):
    async def test_admin_deactivates_keeping_history(self):
        tokens = await self.data(await self.login("alice"))
        data = await self.data(await self.client.delete(f"{USERS}/{self.alice_id}", headers=self.admin))
        self.assertEqual((data["id"], data["isActive"]), (str(self.alice_id), False))
        await error_of(self, await self.client.get(f"{USERS}/me", headers=self.alice), 401, "UNAUTHORIZED")
        await error_of(
            self,
            await self.client.post("/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]}),
            401,
            "UNAUTHORIZED",
        )
        await error_of(self, await self.login("alice"), 401, "INVALID_CREDENTIALS")
        async with self.sessions() as session:
            self.assertIsNotNone(await session.get(User, self.alice_id))
            self.assertIsNotNone(
                await session.scalar(select(Account).where(Account.user_id == self.alice_id))
            )
            tokens = (
                await session.scalars(select(RefreshToken).where(RefreshToken.user_id == self.alice_id))
            ).all()
        self.assertTrue(tokens and all(t.revoked_at is not None for t in tokens))
        # Deleting again is harmless and the user still shows in the admin list.
        await self.data(await self.client.delete(f"{USERS}/{self.alice_id}", headers=self.admin))
        listed = await self.data(await self.client.get(USERS, params={"q": "alice"}, headers=self.admin))
        self.assertEqual([(u["username"], u["isActive"]) for u in listed], [("alice", False)])

    async def test_non_admin_cannot_delete(self):
        await error_of(
            self, await self.client.delete(f"{USERS}/{self.bob_id}", headers=self.alice), 403, "FORBIDDEN"
        )
        await error_of(
            self, await self.client.delete(f"{USERS}/{self.alice_id}", headers=self.alice), 403, "FORBIDDEN"
        )
        await error_of(self, await self.client.delete(f"{USERS}/{self.bob_id}"), 401, "UNAUTHORIZED")

    async def test_unknown_self_and_malformed(self):
        await error_of(
            self, await self.client.delete(f"{USERS}/{uuid.uuid4()}", headers=self.admin), 404, "NOT_FOUND"
        )
        await error_of(self, await self.client.delete(f"{USERS}/xyz", headers=self.admin), 404, "NOT_FOUND")
        await error_of(
            self, await self.client.delete(f"{USERS}/{self.admin_id}", headers=self.admin), 409, "CONFLICT"
        )


class CurrentPasswordGuessingTest(UsersCase):
    """Guessing currentPassword with a stolen access token is rate limited like logging in."""

    settings_overrides = {"rate_limit_login_per_username": 3}

    async def change(self, current):
        body = {"password": "brand new pass", "currentPassword": current}
        return await self.client.patch(f"{USERS}/{self.alice_id}", json=body, headers=self.alice)

    async def test_guesses_beyond_the_limit_are_429_even_when_right(self):
        for guess in ("guess one", "guess two", "guess three"):
            await error_of(self, await self.change(guess), 401, "INVALID_CREDENTIALS")
        response = await self.change(DEFAULT_PASSWORD)  # the right one, once the limit is used up
        await error_of(self, response, 429, "RATE_LIMITED")
        self.assertGreater(int(response.headers["Retry-After"]), 0)
        async with self.sessions() as session:
            stored = (await session.get(User, self.alice_id)).password_hash
        self.assertTrue(await passwords.verify_password(DEFAULT_PASSWORD, stored))  # unchanged
        # The guesses counted against the login limit of the same name.
        await error_of(self, await self.login("alice"), 429, "RATE_LIMITED")
        # Another user's limit is untouched.
        self.assertEqual((await self.login("bob")).status, 200)
