"""The xdist workers of `make test` never share a database, a Redis db or a run folder."""

from __future__ import annotations

import os
import unittest

from tests.support import env

DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/lightning_wallet_test"
REDIS = "redis://127.0.0.1:6379/15"


class WorkerUrlsTest(unittest.TestCase):
    def test_each_worker_has_its_own_database_and_redis_db_and_none_takes_the_bench_db(self) -> None:
        urls = [env.worker_urls(f"gw{n}", DB, REDIS) for n in range(4)]
        self.assertEqual(urls[0], (DB + "_gw0", REDIS))
        self.assertEqual(urls[1], (DB + "_gw1", "redis://127.0.0.1:6379/13"))
        self.assertEqual(len({database for database, _ in urls}), 4)
        self.assertEqual(len({redis for _, redis in urls}), 4)
        self.assertNotIn(f"redis://127.0.0.1:6379/{env.BENCH_REDIS_DB}", {redis for _, redis in urls})

    def test_a_password_and_query_in_the_url_are_kept(self) -> None:
        database, redis = env.worker_urls(
            "gw2", "postgresql+asyncpg://u:p@db:5433/t?ssl=disable", "redis://:pw@cache:6380/15"
        )
        self.assertEqual(database, "postgresql+asyncpg://u:p@db:5433/t_gw2?ssl=disable")
        self.assertEqual(redis, "redis://:pw@cache:6380/12")

    def test_more_workers_than_redis_dbs_is_refused(self) -> None:
        with self.assertRaises(RuntimeError):
            env.worker_urls("gw14", DB, REDIS)


class ThisWorkerTest(unittest.TestCase):
    def test_under_xdist_this_process_and_its_children_use_the_workers_own_urls(self) -> None:
        if not env.XDIST_WORKER:
            self.skipTest("the tests run in one process (TEST_WORKERS=0)")

        settings = env.make_settings()
        self.assertTrue(settings.database_url.endswith("_" + env.XDIST_WORKER), settings.database_url)
        self.assertEqual(os.environ["DATABASE_URL"], settings.database_url)
        self.assertEqual(os.environ["REDIS_URL"], settings.redis_url)
        self.assertTrue(env.TEST_RUN_DIR.name.endswith(env.XDIST_WORKER))
