"""Prometheus metrics of the lightning worker: every worker metric, with its exact name, lives here.

Each worker process serves its own at ``http://WORKER_METRICS_HOST:WORKER_METRICS_PORT/metrics``
(lightning_worker/metrics_endpoint.py, which also refreshes the sampled gauges). Code elsewhere calls
the functions below, never the metric objects, so a call site is one line:

    ================================================  ===============================================
    call                                              metric
    ================================================  ===============================================
    instrument_jobs(worker_attrs)                     ``lightning_wallet_jobs_total{function, outcome}``
      (worker.py, once: wraps every job and cron)     outcome: success | retry | error | cancelled;
                                                      ``lightning_wallet_job_duration_seconds{function}``
    count_payment(outcome)                            ``lightning_wallet_payments_total{outcome}``
      (where a payment row becomes final)             outcome: succeeded | failed
    count_settlements(credited)                       ``lightning_wallet_invoices_settled_total`` and
      (after the commit that credited node-settled    ``lightning_wallet_settlement_lag_seconds``
      invoices)                                       (node settle_date → credited)
    count_row_events(events)                          payments and settlements made inside Postgres
      (internal payments, after the commit)           (no node settle: no lag observed)
    watch_leader(subscription.holding)                ``lightning_wallet_settlement_leader`` (1 while
                                                      this process holds the settlement lease)
    record_ledger_sample(...), forget_ledger_sample() ``lightning_wallet_liabilities_msat`` (sum of user
    record_node_balance(local_msat)                   balances), ``..._treasury_msat``,
      (metrics_endpoint.py, every                     ``..._payments_in_flight`` (pending or in_flight),
      WORKER_METRICS_SAMPLE_S)                        ``..._oldest_in_flight_payment_seconds``,
                                                      ``..._node_local_balance_msat`` (ChannelBalance)
    count_anomaly(kind)                               ``lightning_wallet_anomalies_total{kind}``
      (wherever an anomaly is recorded)
    set_reconciliation_mismatches(count)              ``lightning_wallet_reconciliation_mismatches``
      (after each reconciliation pass)
    count_webhook_delivery(outcome)                   ``lightning_wallet_webhook_deliveries_total``
      (after each delivery attempt)                   ``{outcome}``: delivered | retry | failed
    ================================================  ===============================================

The functions never raise for an unexpected value (a metric must not fail a job whose money work has
committed); outcomes and kinds come from code, never from input, so the label sets stay small.

Counters count what this process did; a sum over the workers is the system's. The sampled gauges
say the same thing in every worker (take ``max``, not ``sum``); NaN means "not known": not sampled
yet, or the last sample failed (the node did not answer), never a guess such as 0.

The registry is the process's own (module level, like prometheus-client's default one, but without
other libraries' metrics); in-process tests read deltas.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from arq import Retry
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

if TYPE_CHECKING:
    from lightning_worker.settlement import SettledInvoice
    from shared.events import RowEvent

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

JOB_OUTCOMES = ("success", "retry", "error", "cancelled")
PAYMENT_OUTCOMES = ("succeeded", "failed")
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed")

JOBS = Counter(
    "lightning_wallet_jobs_total",
    "Job runs (retries count again), by arq function name and outcome",
    ("function", "outcome"),
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "lightning_wallet_job_duration_seconds",
    "Time of one job run, by arq function name",
    ("function",),
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
PAYMENTS = Counter(
    "lightning_wallet_payments_total",
    "Payments that reached a final state in this process, by outcome",
    ("outcome",),
    registry=REGISTRY,
)
INVOICES_SETTLED = Counter(
    "lightning_wallet_invoices_settled_total",
    "Invoices credited as settled by this process",
    registry=REGISTRY,
)
SETTLEMENT_LAG = Histogram(
    "lightning_wallet_settlement_lag_seconds",
    "From the node's settle_date (whole seconds) to the committed credit",
    registry=REGISTRY,
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0),
)
SETTLEMENT_LEADER = Gauge(
    "lightning_wallet_settlement_leader",
    "1 while this process holds the settlement lease and follows the node's invoice stream",
    registry=REGISTRY,
)
PAYMENTS_IN_FLIGHT = Gauge(
    "lightning_wallet_payments_in_flight",
    "Payments not final yet (pending or in_flight), sampled",
    registry=REGISTRY,
)
OLDEST_IN_FLIGHT = Gauge(
    "lightning_wallet_oldest_in_flight_payment_seconds",
    "Age of the oldest payment not final yet (0 when there is none), sampled",
    registry=REGISTRY,
)
LIABILITIES = Gauge(
    "lightning_wallet_liabilities_msat",
    "Sum of the users' balances: what the operator owes them, sampled",
    registry=REGISTRY,
)
TREASURY = Gauge(
    "lightning_wallet_treasury_msat", "Balance of the treasury account, sampled", registry=REGISTRY
)
NODE_LOCAL_BALANCE = Gauge(
    "lightning_wallet_node_local_balance_msat",
    "The node's local channel balance (ChannelBalance), sampled",
    registry=REGISTRY,
)
RECONCILIATION_MISMATCHES = Gauge(
    "lightning_wallet_reconciliation_mismatches",
    "Mismatches found by the last reconciliation against the node",
    registry=REGISTRY,
)
ANOMALIES = Counter(
    "lightning_wallet_anomalies_total", "Anomalies recorded, by kind", ("kind",), registry=REGISTRY
)
WEBHOOK_DELIVERIES = Counter(
    "lightning_wallet_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome",
    ("outcome",),
    registry=REGISTRY,
)

# Bound once: every outcome shows from the start at 0, and a call costs no label lookup.
_PAYMENT = {outcome: PAYMENTS.labels(outcome) for outcome in PAYMENT_OUTCOMES}
_WEBHOOK = {outcome: WEBHOOK_DELIVERIES.labels(outcome) for outcome in WEBHOOK_OUTCOMES}
_SAMPLED_FROM_LEDGER = (LIABILITIES, TREASURY, PAYMENTS_IN_FLIGHT, OLDEST_IN_FLIGHT)
for _gauge in (*_SAMPLED_FROM_LEDGER, NODE_LOCAL_BALANCE):
    _gauge.set(math.nan)  # until the first sample


def instrument_jobs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Wrap every function and cron job of arq WorkerSettings attributes (in place, and returned).

    A wrapper rather than arq's on_job_start / after_job_end hooks: those get neither the function
    name nor the outcome. A run arq refuses before starting it (max tries exceeded) is not counted."""
    for key in ("functions", "cron_jobs"):
        attrs[key] = [
            dataclasses.replace(job, coroutine=_timed(job.name, job.coroutine)) for job in attrs.get(key, ())
        ]
    return attrs


def _timed(function: str, coroutine: Any) -> Any:
    duration = JOB_DURATION.labels(function)
    outcomes = {outcome: JOBS.labels(function, outcome) for outcome in JOB_OUTCOMES}

    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await coroutine(ctx, *args, **kwargs)
            outcome = "success"
            return result
        except Retry:
            outcome = "retry"
            raise
        except asyncio.CancelledError:  # arq's job timeout, or shutdown: arq runs it again
            outcome = "cancelled"
            raise
        finally:
            duration.observe(time.perf_counter() - started)
            outcomes[outcome].inc()

    return run


def count_payment(outcome: str) -> None:
    """A payment row became ``succeeded`` or ``failed`` (call once per transition, after commit)."""
    (_PAYMENT.get(outcome) or PAYMENTS.labels(outcome)).inc()


def count_settlements(credited: Iterable[SettledInvoice]) -> None:
    """Invoices the node settled, now credited (committed); observes each one's lag."""
    now = time.time()
    count = 0
    for invoice in credited:
        count += 1
        if invoice.settled_at is not None:
            SETTLEMENT_LAG.observe(max(0.0, now - invoice.settled_at.timestamp()))
    if count:
        INVOICES_SETTLED.inc(count)


def count_row_events(events: Iterable[RowEvent]) -> None:
    """Final payments and settled invoices among committed row events."""
    for event in events:
        if event.type == "payment" and event.state in PAYMENT_OUTCOMES:
            count_payment(event.state)
        elif event.type == "invoice" and event.state == "settled":
            INVOICES_SETTLED.inc()


def watch_leader(holding: asyncio.Event) -> None:
    """Report the settlement lease from the subscription's own ``holding`` event, read at scrape."""
    SETTLEMENT_LEADER.set_function(lambda: 1.0 if holding.is_set() else 0.0)


def record_ledger_sample(
    *, liabilities_msat: float, treasury_msat: float, in_flight: float, oldest_in_flight_s: float
) -> None:
    LIABILITIES.set(liabilities_msat)
    TREASURY.set(treasury_msat)
    PAYMENTS_IN_FLIGHT.set(in_flight)
    OLDEST_IN_FLIGHT.set(oldest_in_flight_s)


def forget_ledger_sample() -> None:
    """The database did not answer: the ledger gauges are unknown (NaN), not stale."""
    for gauge in _SAMPLED_FROM_LEDGER:
        gauge.set(math.nan)


def record_node_balance(local_msat: float | None) -> None:
    """The node's local channel balance; None when the node did not answer (shown as NaN)."""
    NODE_LOCAL_BALANCE.set(math.nan if local_msat is None else local_msat)


def count_anomaly(kind: str) -> None:
    """An anomaly was recorded. ``kind`` comes from code (a fixed vocabulary), never from input."""
    ANOMALIES.labels(kind).inc()


def set_reconciliation_mismatches(count: int) -> None:
    RECONCILIATION_MISMATCHES.set(count)


def count_webhook_delivery(outcome: str) -> None:
    """One delivery attempt ended: ``delivered``, ``retry`` (will be tried again) or ``failed`` (given up)."""
    (_WEBHOOK.get(outcome) or WEBHOOK_DELIVERIES.labels(outcome)).inc()
