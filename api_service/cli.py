"""Command line of the API service: serve (default), seed, create-admin.

- ``python -m api_service`` / ``serve``: the HTTP API (``API_WORKERS`` processes; api_service/server.py).
- ``create-admin --username NAME``: a new admin; the password comes from a prompt (twice) on a TTY,
  else from the first line of stdin. Validated like the API; exits 1 if the name is taken, 2 if the
  name or password is invalid.
- ``seed``: users ``admin`` (admin) and ``demo`` (user) when absent, each with the password from
  ``SEED_ADMIN_PASSWORD`` / ``SEED_DEMO_PASSWORD`` or a random one printed once. Users that exist
  are left alone and no password is printed for them. Idempotent; expects a migrated database.
- ``record-deposit --amount-sat N --reason TEXT [--first-only]``: record a treasury deposit (the
  operator's own funds already on the node, equity -> treasury), as ``POST /admin/treasury/deposits``
  does, by the system rather than an admin. ``--first-only``: only when no deposit was ever recorded
  (``make run`` funds a fresh development treasury this way).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import sys

import pydantic

from shared.config import ConfigError, Settings, load_settings
from shared.logs import configure_logging

SEED_USERS = (("admin", "admin", "SEED_ADMIN_PASSWORD"), ("demo", "user", "SEED_DEMO_PASSWORD"))


class CliError(Exception):
    """A message for the operator and the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _validated(username: str, password: str) -> tuple[str, str]:
    from api_service.schemas.auth import RegisterRequest

    try:
        checked = RegisterRequest.model_validate({"username": username, "password": password})
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        )
        raise CliError(f"invalid {problems}", status=2) from None
    return checked.username, checked.password


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Repeat password: "):
            raise CliError("the passwords differ", status=2)
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def _with_sessions(settings: Settings, work):
    from shared.db.engine import create_engine, create_sessionmaker

    engine = create_engine(settings, pool_size=1)
    try:
        return await work(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def create_admin(settings: Settings, username: str, password: str) -> str:
    from api_service.services import users
    from shared.errors import UsernameTaken

    username, password = _validated(username, password)

    async def work(sessions) -> str:
        try:
            user = await users.create_user(
                sessions, settings, username=username, password=password, role="admin"
            )
        except UsernameTaken:
            raise CliError(
                f"the username {username!r} is taken (create-admin never changes an existing user)"
            ) from None
        return f"created admin {user.username} ({user.id})"

    return await _with_sessions(settings, work)


async def seed(settings: Settings, environ: dict[str, str]) -> list[str]:
    from api_service.services import users
    from shared.errors import UsernameTaken

    async def work(sessions) -> list[str]:
        lines = []
        for username, role, variable in SEED_USERS:
            if await users.find_user_by_username(sessions, username) is not None:
                lines.append(f"{role} login: {username} (exists; password unchanged)")
                continue
            given = environ.get(variable)
            _, password = _validated(username, given or secrets.token_urlsafe(12))
            try:
                await users.create_user(sessions, settings, username=username, password=password, role=role)
            except UsernameTaken:  # created by a concurrent seed
                lines.append(f"{role} login: {username} (exists; password unchanged)")
                continue
            shown = f"(password from {variable})" if given else f"password {password}"
            lines.append(f"{role} login: {username} {shown}")
        return lines

    return await _with_sessions(settings, work)


async def record_deposit(settings: Settings, amount_sat: int, reason: str, *, first_only: bool) -> str:
    from sqlalchemy import select, text

    from shared import adjustments
    from shared.db.models import Adjustment

    if amount_sat <= 0:
        raise CliError("--amount-sat must be positive", status=2)
    if not 1 <= len(reason.strip()) <= adjustments.REASON_MAX_CHARS:
        raise CliError(f"--reason must be 1 to {adjustments.REASON_MAX_CHARS} characters", status=2)

    async def work(sessions) -> str:
        async with sessions() as session, session.begin():
            if first_only:
                # Serialise concurrent first starts: the treasury row is the natural lock.
                await session.execute(text("SELECT id FROM accounts WHERE kind = 'treasury' FOR UPDATE"))
                if await session.scalar(select(Adjustment.id).where(Adjustment.kind == "deposit").limit(1)):
                    return "a treasury deposit exists already; nothing recorded"
            row = await adjustments.record_deposit(
                session, amount_msat=amount_sat * 1000, reason=reason, created_by=None
            )
        return f"recorded treasury deposit {row.id}: {amount_sat} sat"

    return await _with_sessions(settings, work)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m api_service")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the HTTP API (the default)")
    admin = commands.add_parser("create-admin", help="create an admin user (password from a prompt or stdin)")
    admin.add_argument("--username", required=True)
    commands.add_parser("seed", help="create the admin and demo users if they are missing")
    deposit = commands.add_parser("record-deposit", help="record a treasury deposit (equity -> treasury)")
    deposit.add_argument("--amount-sat", type=int, required=True)
    deposit.add_argument("--reason", required=True)
    deposit.add_argument("--first-only", action="store_true", help="only if no deposit was recorded yet")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command in (None, "serve"):
        # Imported here, not at the top: with API_WORKERS > 1 the server sets up prometheus-client's
        # multiprocess directory before anything imports the app (api_service/server.py).
        from api_service.server import serve

        serve(settings)
        return 0
    try:
        if args.command == "create-admin":
            print(asyncio.run(create_admin(settings, args.username, _read_password())))
        elif args.command == "record-deposit":
            print(
                asyncio.run(
                    record_deposit(settings, args.amount_sat, args.reason, first_only=args.first_only)
                )
            )
        else:
            for line in asyncio.run(seed(settings, dict(os.environ))):
                print(line)
    except CliError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return exc.status
    return 0
