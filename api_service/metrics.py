"""Prometheus metrics of the API: what every request costs and how it ended.

- ``lightning_wallet_http_requests_total{method, route, status}``
- ``lightning_wallet_http_request_duration_seconds{method, route}`` (histogram)

``route`` is the aiohttp route template (``/api/v1/invoices/{id}``), never the raw path: ids and
payment hashes would make a series per row. A request no route matched (404, 405) is ``unmatched``
and a method we do not serve is ``OTHER``, so no client can grow the label set.

The middleware sits on the hot path, so it does the least it can: two clock reads, two dict lookups
of label children bound on first use per (route, method) and per status, one counter increment and
one histogram observation. No label tuple is built and no string formatted per request.

One process (``API_WORKERS=1``): each app has its own registry, with the process collectors. Several
(gunicorn): prometheus-client's multiprocess mode. ``PROMETHEUS_MULTIPROC_DIR`` is set before
prometheus-client is first imported (api_service/server.py sees to it), every process writes its
samples to files there, and whichever process answers a scrape sums them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Reads take a few ms, creates wait for the worker (tens of ms), SSE streams stay open for minutes.
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpMetrics:
    """The two HTTP metrics of one app, the registry that serves them and the request middleware."""

    def __init__(self) -> None:
        multiproc_dir = os.environ.get(MULTIPROC_ENV)
        self.registry = CollectorRegistry()
        if multiproc_dir:
            # The values live in files; the serving registry reads every process's files.
            MultiProcessCollector(self.registry, path=multiproc_dir)
            own = None
        else:
            own = self.registry
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        self.requests = Counter(
            "lightning_wallet_http_requests_total",
            "HTTP requests answered, by method, route template and status",
            ("method", "route", "status"),
            registry=own,
        )
        self.duration = Histogram(
            "lightning_wallet_http_request_duration_seconds",
            "Time from the request reaching the app to its response, by method and route template",
            ("method", "route"),
            registry=own,
            buckets=BUCKETS_S,
        )
        # resource (None: unmatched) -> method -> (duration child, {status: counter child})
        self._children: dict[object, dict[str, tuple[Histogram, dict[int, Counter]]]] = {}

    def _bind(self, resource: web.AbstractResource | None, method: str) -> tuple[Histogram, dict]:
        route = UNMATCHED if resource is None else resource.canonical
        bound = (self.duration.labels(method, route), {})
        self._children.setdefault(resource, {})[method] = bound
        return bound

    def observe(
        self, resource: web.AbstractResource | None, method: str, status: int, elapsed_s: float
    ) -> None:
        if method not in METHODS:
            method = "OTHER"
        by_method = self._children.get(resource)
        bound = by_method.get(method) if by_method is not None else None
        if bound is None:
            bound = self._bind(resource, method)
        duration, counters = bound
        counter = counters.get(status)
        if counter is None:
            route = UNMATCHED if resource is None else resource.canonical
            counter = counters[status] = self.requests.labels(method, route, str(status))
        counter.inc()
        duration.observe(elapsed_s)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Outermost, so it sees the status the error middleware rendered. Only a cancelled request
        (shutdown) escapes uncounted: every other failure arrives here as a response."""
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and the like, raised past the error middleware
            self.observe(
                request.match_info.route.resource, request.method, exc.status, time.perf_counter() - started
            )
            raise
        self.observe(
            request.match_info.route.resource, request.method, response.status, time.perf_counter() - started
        )
        return response
