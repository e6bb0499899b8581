"""A short chaos soak (``python -m bench.soak``, about 45 s of load) as part of ``make test``.

Isolated per checkout: its database is the test database's name + ``_soak`` on the same server, its
Redis a private redis-server of its own under ``.run/test-soak`` (the soak restarts Redis, so never
the shared one), its own lnd_simnet, APIs and workers on free ports of 127.0.0.1; the report goes to
a temporary folder, not ``bench/results``. Every fault kind must be injected at least once and the
audit must find nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from bench.soak.faults import KINDS
from tests.support import env
from tests.support.cases import AsyncCase

LOAD_MINUTES = "0.75"
TIMEOUT_S = 300  # the run takes about 75 s; a bound, not a target


class ShortSoakTest(AsyncCase):
    async def test_a_short_soak_finds_no_violation_and_injects_every_fault(self) -> None:
        database_url = env.with_database(env.database_url(), env.database_name(env.database_url()) + "_soak")
        with tempfile.TemporaryDirectory(prefix="soak-report-") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.soak",
                "--minutes",
                LOAD_MINUTES,
                "--seed",
                "7",
                "--rounds",
                "1",
                "--quiesce-s",
                "90",
                "--database-url",
                database_url,
                "--run-dir",
                str(env.REPO_ROOT / ".run" / "test-soak"),
                "--out",
                out,
                cwd=env.REPO_ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                output, _ = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
            except TimeoutError:
                process.terminate()  # the soak stops everything it started on SIGTERM
                await process.wait()
                raise
            text = output.decode(errors="replace")
            self.assertEqual(process.returncode, 0, text[-6000:])
            report = json.loads((Path(out) / "soak.json").read_text())
        self.assertEqual(report["violations"], [])
        self.assertEqual({kind for kind, count in report["faults"].items() if count >= 1}, set(KINDS))
        self.assertGreater(sum(report["operations"].values()), 100)
        self.assertEqual(
            report["reconciliation"]["invoices_settled_ours"],
            report["reconciliation"]["invoices_settled_node"],
        )
