"""Where `make run` / `make test` take Postgres and Redis from: environment, local default, private."""

from __future__ import annotations

import unittest

from devtools.services import (
    LOCAL_DATABASE_URL,
    LOCAL_REDIS_URL,
    Choice,
    choose_test_urls,
    decide,
    redact,
    with_database,
    with_redis_db,
)


class FakeProbe:
    """Answers for the local defaults as told, and records what was probed."""

    def __init__(self, postgres: bool, redis: bool) -> None:
        self.answers = {"postgres": postgres, "redis": redis}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, service: str, url: str) -> bool:
        self.calls.append((service, url))
        return self.answers[service]


ENV_URLS = {
    "DATABASE_URL": "postgresql+asyncpg://app:pw@db.example:6543/wallet",
    "REDIS_URL": "redis://cache.example:6380/2",
}


class DecideTest(unittest.TestCase):
    def test_environment_urls_win_without_probing(self):
        probe = FakeProbe(postgres=True, redis=True)
        pg, redis = decide(ENV_URLS, embedded=False, probe=probe)
        self.assertEqual(pg, Choice("env", ENV_URLS["DATABASE_URL"]))
        self.assertEqual(redis, Choice("env", ENV_URLS["REDIS_URL"]))
        self.assertEqual(probe.calls, [])

    def test_environment_urls_win_even_when_embedded_is_asked(self):
        pg, redis = decide(ENV_URLS, embedded=True, probe=FakeProbe(False, False))
        self.assertEqual((pg.kind, redis.kind), ("env", "env"))

    def test_empty_environment_values_count_as_unset(self):
        pg, redis = decide({"DATABASE_URL": "", "REDIS_URL": ""}, embedded=False, probe=FakeProbe(True, True))
        self.assertEqual((pg.kind, redis.kind), ("local", "local"))

    def test_local_defaults_when_they_answer(self):
        probe = FakeProbe(postgres=True, redis=True)
        pg, redis = decide({}, embedded=False, probe=probe)
        self.assertEqual(pg, Choice("local", LOCAL_DATABASE_URL))
        self.assertEqual(redis, Choice("local", LOCAL_REDIS_URL))
        self.assertEqual(probe.calls, [("postgres", LOCAL_DATABASE_URL), ("redis", LOCAL_REDIS_URL)])
        self.assertIn("@127.0.0.1:5432/lightning_wallet", LOCAL_DATABASE_URL)
        self.assertTrue(LOCAL_DATABASE_URL.startswith("postgresql+asyncpg://postgres@"))

    def test_private_instances_when_the_local_defaults_are_silent(self):
        pg, redis = decide({}, embedded=False, probe=FakeProbe(postgres=False, redis=False))
        self.assertEqual(pg, Choice("private", None))
        self.assertEqual(redis, Choice("private", None))

    def test_each_service_decides_on_its_own(self):
        pg, redis = decide({}, embedded=False, probe=FakeProbe(postgres=False, redis=True))
        self.assertEqual((pg.kind, redis.kind), ("private", "local"))
        only_db = {"DATABASE_URL": ENV_URLS["DATABASE_URL"]}
        pg, redis = decide(only_db, embedded=False, probe=FakeProbe(postgres=False, redis=False))
        self.assertEqual((pg.kind, redis.kind), ("env", "private"))

    def test_embedded_skips_the_local_defaults(self):
        probe = FakeProbe(postgres=True, redis=True)
        pg, redis = decide({}, embedded=True, probe=probe)
        self.assertEqual((pg.kind, redis.kind), ("private", "private"))
        self.assertEqual(probe.calls, [])


class TestUrlsTest(unittest.TestCase):
    def test_tests_use_their_own_database_and_redis_db_on_the_same_servers(self):
        test_db, test_redis = choose_test_urls({}, ENV_URLS["DATABASE_URL"], ENV_URLS["REDIS_URL"])
        self.assertEqual(test_db, "postgresql+asyncpg://app:pw@db.example:6543/lightning_wallet_test")
        self.assertEqual(test_redis, "redis://cache.example:6380/15")

    def test_explicit_test_urls_win(self):
        env = {"LW_TEST_DATABASE_URL": "postgresql+asyncpg://t@h:1/t", "LW_TEST_REDIS_URL": "redis://h:2/3"}
        self.assertEqual(
            choose_test_urls(env, LOCAL_DATABASE_URL, LOCAL_REDIS_URL),
            ("postgresql+asyncpg://t@h:1/t", "redis://h:2/3"),
        )

    def test_refuses_to_test_against_the_run_database(self):
        run_db = with_database(LOCAL_DATABASE_URL, "lightning_wallet_test")
        with self.assertRaises(SystemExit):
            choose_test_urls({}, run_db, LOCAL_REDIS_URL)
        with self.assertRaises(SystemExit):
            choose_test_urls({}, LOCAL_DATABASE_URL, "redis://127.0.0.1:6379/15")


class UrlHelpersTest(unittest.TestCase):
    def test_with_database_keeps_credentials_host_and_query(self):
        url = "postgresql+asyncpg://u:p@h:5/a?ssl=require"
        self.assertEqual(with_database(url, "b"), "postgresql+asyncpg://u:p@h:5/b?ssl=require")

    def test_with_redis_db(self):
        self.assertEqual(with_redis_db("redis://:pw@h:6379", 15), "redis://:pw@h:6379/15")

    def test_redact_hides_passwords_only(self):
        self.assertEqual(redact("postgresql+asyncpg://u:secret@h:5/a"), "postgresql+asyncpg://u:***@h:5/a")
        self.assertEqual(redact(LOCAL_REDIS_URL), LOCAL_REDIS_URL)
