"""The tutorial's user lifecycle over real HTTP against a real `python -m api_service` process."""

import aiohttp

from tests.support import env
from tests.support.cases import DbCase
from tests.support.processes import api_process


class UserLifecycleTest(DbCase):
    async def test_user_lifecycle(self):
        async with api_process() as base_url, aiohttp.ClientSession(base_url) as http:
            api = "/api/v1"

            async def call(method, path, status, **kwargs):
                async with http.request(method, api + path, **kwargs) as response:
                    body = await response.json() if response.status != 204 else None
                    self.assertEqual(response.status, status, body)
                    if body is not None:
                        self.assertEqual(body["success"], status < 400)
                        self.assertIn("requestId", body["meta"])
                    return body

            register = await call(
                "POST",
                "/auth/register",
                201,
                json={"username": "Boss", "password": "admin password", "adminKey": env.TEST_ADMIN_KEY},
            )
            self.assertEqual(register["data"]["user"]["role"], "admin")

            login = await call(
                "POST", "/auth/login", 200, json={"username": "boss", "password": "admin password"}
            )
            admin = {"Authorization": f"Bearer {login['data']['accessToken']}"}
            me = await call("GET", "/users/me", 200, headers=admin)
            admin_id = me["data"]["id"]
            self.assertEqual((me["data"]["username"], me["data"]["role"]), ("Boss", "admin"))
            self.assertIsNotNone(me["data"]["lastLoginAt"])

            renamed = await call(
                "PATCH", f"/users/{admin_id}", 200, headers=admin, json={"username": "chief"}
            )
            self.assertEqual(renamed["data"]["username"], "chief")
            await call("POST", "/auth/login", 401, json={"username": "Boss", "password": "admin password"})
            login = await call(
                "POST", "/auth/login", 200, json={"username": "chief", "password": "admin password"}
            )
            admin = {"Authorization": f"Bearer {login['data']['accessToken']}"}

            user = await call(
                "POST", "/auth/register", 201, json={"username": "alice", "password": "alice password"}
            )
            alice = {"Authorization": f"Bearer {user['data']['accessToken']}"}
            alice_id = user["data"]["user"]["id"]
            await call("GET", "/users", 403, headers=alice)

            listing = await call("GET", "/users", 200, headers=admin, params={"pageSize": "10"})
            self.assertEqual(sorted(u["username"] for u in listing["data"]), ["alice", "chief"])
            self.assertEqual(listing["pagination"]["totalItems"], 2)

            deleted = await call("DELETE", f"/users/{alice_id}", 200, headers=admin)
            self.assertFalse(deleted["data"]["isActive"])
            await call("GET", "/users/me", 401, headers=alice)
            await call("POST", "/auth/refresh", 401, json={"refreshToken": user["data"]["refreshToken"]})
            await call("POST", "/auth/login", 401, json={"username": "alice", "password": "alice password"})

            refreshed = await call(
                "POST", "/auth/refresh", 200, json={"refreshToken": login["data"]["refreshToken"]}
            )
            await call(
                "POST",
                "/auth/logout",
                204,
                headers=admin,
                json={"refreshToken": refreshed["data"]["refreshToken"]},
            )
            await call("POST", "/auth/refresh", 401, json={"refreshToken": refreshed["data"]["refreshToken"]})

            async with http.get(api + "/openapi.json") as response:
                self.assertIn("/api/v1/users/{id}", (await response.json())["paths"])
