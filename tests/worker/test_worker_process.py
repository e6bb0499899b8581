"""Foundation acceptance: a real ``python -m lightning_worker`` process.

It starts even though the node is not reachable (and its TLS certificate does not exist yet),
says so in its log, keeps arq's health-check key fresh, and ``arq ... --check`` agrees; once it
stops, the check fails. A bad configuration exits with code 2 and a clear message.
"""

from __future__ import annotations

import asyncio
import sys

from arq.connections import RedisSettings, create_pool

from shared import jobs
from tests.support.cases import wait_for
from tests.support.processes import managed_process, service_env
from tests.worker.helpers import WorkerCase

HEALTH_KEY_SUFFIX = ":health-check"


def worker_env(**overrides: str) -> dict[str, str]:
    return service_env(
        {
            "LND_GRPC_HOST": "127.0.0.1:1",
            "LND_TLS_CERT_PATH": "/nonexistent/tls.cert",
            "LND_MACAROON_PATH": "/nonexistent/admin.macaroon",
            "LND_TIMEOUT_S": "1",
            **overrides,
        }
    )


async def run(cmd: list[str], env: dict[str, str], timeout_s: float = 30) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    return process.returncode, out.decode(errors="replace")


class WorkerProcessTests(WorkerCase):
    async def test_starts_without_the_node_reports_health_and_arq_check_agrees(self) -> None:
        env = worker_env()
        health_key = self.settings.arq_queue_name + HEALTH_KEY_SUFFIX
        check = [sys.executable, "-m", "arq", "lightning_worker.worker.WorkerSettings", "--check"]
        invoice_id = await self.pending_invoice(await self.user())

        async def healthy() -> bool:
            return bool(await self.redis.exists(health_key))

        async with managed_process(
            [sys.executable, "-m", "lightning_worker"], env, name="worker", ready=healthy, ready_timeout_s=30
        ) as worker:
            code, output = await run(check, env)
            self.assertEqual(code, 0, output)
            pool = await create_pool(RedisSettings.from_dsn(self.settings.redis_url), **jobs.SERIALIZERS)
            await pool.enqueue_job(
                jobs.CREATE_INVOICE, str(invoice_id), _job_id=jobs.create_invoice_job_id(invoice_id)
            )
            await pool.aclose()

            async def retried() -> bool:
                return "retrying job" in worker.log_text()

            await wait_for(retried, timeout_s=60, message="the job to be retried")
            self.assertIn("LND not reachable yet", worker.log_text())
            self.assertEqual((await self.invoice(invoice_id)).state, "pending")  # unknown is not failed
            self.assertIn('"level": "info"', worker.log_text())  # JSON logs
        self.assertEqual(worker.returncode, 0)  # SIGTERM: clean shutdown
        self.assertFalse(await self.redis.exists(health_key))
        code, output = await run(check, env)
        self.assertEqual(code, 1, output)

    async def test_bad_configuration_exits_2_with_a_message(self) -> None:
        env = worker_env(ENVIRONMENT="production", JWT_SECRET="short")
        code, output = await run([sys.executable, "-m", "lightning_worker"], env)
        self.assertEqual(code, 2)
        self.assertIn("JWT_SECRET", output)
        self.assertNotIn("Traceback", output)
