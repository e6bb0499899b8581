"""`python -m bench.metrics_overhead`: what the API's metrics middleware costs per request.

Two figures, printed (never asserted):

1. The middleware alone: the same trivial handler awaited N times directly and N times through
   ``HttpMetrics.middleware`` on a request resolved to the route ``/api/v1/invoices/{id}``; the
   difference per call, in-memory values (one API process) and prometheus-client's multiprocess
   values (``API_WORKERS>1``; measured in a child process, as the mode is chosen at import).
2. Whole requests: N sequential ``GET /healthz`` over a keep-alive connection to ``create_app`` in
   this process (client included), CPU time per request with and without the middleware.

Each figure is the best of several rounds, run alternately, to damp the noise of a shared machine.
Needs the Redis of REDIS_URL (the app's arq pool); the database is not touched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

ROUNDS = 7


async def _middleware_ns(calls: int) -> tuple[float, float]:
    """(ns per direct call, ns per call through the middleware), best round of each."""
    from api_service.metrics import HttpMetrics

    metrics = HttpMetrics()
    response = web.Response()

    async def handler(request: web.Request) -> web.StreamResponse:
        return response

    app = web.Application()
    app.router.add_get("/api/v1/invoices/{id}", handler)
    app.freeze()
    request = make_mocked_request("GET", "/api/v1/invoices/6f1c", app=app)
    request._match_info = await app.router.resolve(request)  # what aiohttp does before the middlewares
    middleware = metrics.middleware

    async def direct() -> float:
        started = time.perf_counter_ns()
        for _ in range(calls):
            await handler(request)
        return (time.perf_counter_ns() - started) / calls

    async def wrapped() -> float:
        started = time.perf_counter_ns()
        for _ in range(calls):
            await middleware(request, handler)
        return (time.perf_counter_ns() - started) / calls

    await wrapped()  # bind the label children first
    results: dict[str, list[float]] = {"direct": [], "wrapped": []}
    for _ in range(ROUNDS):
        results["direct"].append(await direct())
        results["wrapped"].append(await wrapped())
    labels = {"method": "GET", "route": "/api/v1/invoices/{id}", "status": "200"}
    counted = metrics.registry.get_sample_value("lightning_wallet_http_requests_total", labels)
    assert counted == calls * (ROUNDS + 1), counted  # the middleware really counted every call
    return min(results["direct"]), min(results["wrapped"])


async def _requests_us(requests: int) -> tuple[float, float]:
    """(CPU µs per request without, with the middleware): GET /healthz through create_app."""
    from api_service.app import create_app
    from shared.config import load_settings

    settings = load_settings(environment="development", log_level="WARNING")

    async def cpu_per_request(with_middleware: bool) -> float:
        app = create_app(settings)
        if not with_middleware:
            app.middlewares.pop(0)  # the metrics middleware is the outermost
        async with TestClient(TestServer(app)) as client:
            for _ in range(50):  # warm up: connection, label children
                await (await client.get("/healthz")).read()
            started = time.process_time()
            for _ in range(requests):
                response = await client.get("/healthz")
                await response.read()
            return (time.process_time() - started) / requests * 1e6

    samples: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(ROUNDS):
        for variant in (False, True):
            samples[variant].append(await cpu_per_request(variant))
    return min(samples[False]), min(samples[True])


def _multiprocess_child(calls: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="lw-bench-metrics-") as folder:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder}
        out = subprocess.run(
            [sys.executable, "-m", "bench.metrics_overhead", "--child", "--calls", str(calls)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_overhead")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        direct, wrapped = asyncio.run(_middleware_ns(args.calls))
        print(direct, wrapped)
        return 0
    direct, wrapped = asyncio.run(_middleware_ns(args.calls))
    mp_direct, mp_wrapped = _multiprocess_child(args.calls)
    without, with_ = asyncio.run(_requests_us(args.requests))
    print(f"metrics middleware, best of {ROUNDS} rounds of {args.calls} calls:")
    print(f"  one process (in-memory values):  {wrapped - direct:7.0f} ns per request")
    print(f"  API_WORKERS>1 (multiprocess):     {mp_wrapped - mp_direct:7.0f} ns per request")
    print(f"GET /healthz in process (client included), best of {ROUNDS} rounds of {args.requests}:")
    print(f"  without the middleware: {without:6.1f} µs CPU per request")
    print(f"  with the middleware:    {with_:6.1f} µs CPU per request ({with_ - without:+.1f} µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
