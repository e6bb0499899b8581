"""`python -m api_service create-admin` and `seed` as real subprocesses against the test database."""

import asyncio
import re
import sys

import bcrypt
from sqlalchemy import select

from shared.db.models import Account, User
from tests.support.cases import DbCase
from tests.support.factories import create_user
from tests.support.processes import REPO_ROOT, service_env


class CliCase(DbCase):
    async def cli(self, *args, stdin="", env=None, timeout_s=60):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api_service",
            *args,
            cwd=str(REPO_ROOT),
            env=service_env(env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout_s)
        return process.returncode, out.decode(), err.decode()

    async def user(self, username):
        async with self.sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
            account = None
            if user is not None:
                account = await session.scalar(select(Account).where(Account.user_id == user.id))
        return user, account


class CreateAdminTest(CliCase):
    async def test_creates_an_admin_from_stdin(self):
        code, out, err = await self.cli("create-admin", "--username", "Boss", stdin="s3cret password\n")
        self.assertEqual(code, 0, err)
        self.assertIn("created admin Boss", out)
        self.assertNotIn("s3cret", out + err)
        user, account = await self.user("Boss")
        self.assertEqual(user.role, "admin")
        self.assertTrue(bcrypt.checkpw(b"s3cret password", user.password_hash.encode()))
        self.assertIsNotNone(account)

    async def test_taken_name_exits_nonzero_and_changes_nothing(self):
        await create_user(self.sessions, username="boss", role="user")
        code, _, err = await self.cli("create-admin", "--username", "BOSS", stdin="another password\n")
        self.assertEqual(code, 1)
        self.assertIn("taken", err)
        user, _ = await self.user("boss")
        self.assertEqual(user.role, "user")

    async def test_validates_like_the_api(self):
        cases = [
            ("ok_name", "short"),
            ("ok_name", "é" * 37),
            ("bad name", "long enough pw"),
            ("x'; DROP TABLE users;--", "long enough pw"),
            ("ok_name", ""),
        ]
        for username, password in cases:
            code, out, err = await self.cli("create-admin", "--username", username, stdin=password + "\n")
            self.assertEqual(code, 2, (username, out, err))
            self.assertIn("invalid", err)
            if password:
                self.assertNotIn(password, out + err)
        async with self.sessions() as session:
            self.assertEqual((await session.scalars(select(User))).all(), [])

    async def test_username_is_required(self):
        code, _, err = await self.cli("create-admin", stdin="long enough pw\n")
        self.assertEqual(code, 2)
        self.assertIn("--username", err)


class SeedTest(CliCase):
    async def test_seed_is_idempotent_and_prints_passwords_once(self):
        code, out, err = await self.cli("seed")
        self.assertEqual(code, 0, err)
        passwords = dict(re.findall(r"login: (\w+) password (\S+)", out))
        self.assertEqual(set(passwords), {"admin", "demo"}, out)
        for username, role in (("admin", "admin"), ("demo", "user")):
            user, account = await self.user(username)
            self.assertEqual(user.role, role)
            self.assertIsNotNone(account)
            self.assertTrue(bcrypt.checkpw(passwords[username].encode(), user.password_hash.encode()))

        code, again, err = await self.cli("seed")
        self.assertEqual(code, 0, err)
        self.assertNotIn(" password ", again.replace("password unchanged", ""))
        for password in passwords.values():
            self.assertNotIn(password, again + err)
        self.assertEqual(again.count("exists"), 2, again)
        async with self.sessions() as session:
            self.assertEqual(len((await session.scalars(select(User))).all()), 2)

    async def test_passwords_from_the_environment(self):
        code, out, err = await self.cli(
            "seed", env={"SEED_ADMIN_PASSWORD": "admin from env", "SEED_DEMO_PASSWORD": "demo from env"}
        )
        self.assertEqual(code, 0, err)
        self.assertNotIn("from env", out.replace("(password from SEED_", ""))
        self.assertIn("SEED_ADMIN_PASSWORD", out)
        user, _ = await self.user("admin")
        self.assertTrue(bcrypt.checkpw(b"admin from env", user.password_hash.encode()))
        user, _ = await self.user("demo")
        self.assertTrue(bcrypt.checkpw(b"demo from env", user.password_hash.encode()))

    async def test_existing_users_are_left_alone(self):
        await create_user(self.sessions, username="Admin", role="user")
        code, out, err = await self.cli("seed")
        self.assertEqual(code, 0, err)
        self.assertIn("admin (exists; password unchanged)", out)
        self.assertRegex(out, r"user login: demo password \S+")
        user, _ = await self.user("Admin")
        self.assertEqual(user.role, "user")

    async def test_weak_password_from_the_environment_is_refused(self):
        code, out, err = await self.cli("seed", env={"SEED_ADMIN_PASSWORD": "short"})
        self.assertEqual(code, 2)
        self.assertNotIn("short", out + err.replace("too short", ""))


class RecordDepositTest(CliCase):
    async def treasury_msat(self) -> int:
        async with self.sessions() as session:
            return await session.scalar(select(Account.balance_msat).where(Account.kind == "treasury"))

    async def test_records_a_deposit_and_first_only_records_just_one(self):
        args = ("record-deposit", "--amount-sat", "5000", "--reason", "dev float", "--first-only")
        code, out, err = await self.cli(*args)
        self.assertEqual(code, 0, err)
        self.assertIn("recorded treasury deposit", out)
        code, out, err = await self.cli(*args)
        self.assertEqual(code, 0, err)
        self.assertIn("nothing recorded", out)
        self.assertEqual(await self.treasury_msat(), 5_000_000)
        code, _, err = await self.cli("record-deposit", "--amount-sat", "7", "--reason", "top-up")
        self.assertEqual(code, 0, err)
        self.assertEqual(await self.treasury_msat(), 5_007_000)

    async def test_refuses_a_bad_amount_or_reason(self):
        for args in (("--amount-sat", "0", "--reason", "x"), ("--amount-sat", "5", "--reason", "  ")):
            code, _, err = await self.cli("record-deposit", *args)
            self.assertEqual(code, 2, err)
        self.assertEqual(await self.treasury_msat(), 0)
