"""The whole contract between the API and the worker: job names, deterministic ids, arguments, and
how jobs and results are serialized.

Arguments are row ids only (strings): no tokens, passwords, macaroons or keys, so any arq tool or
dashboard reading Redis can show them. Jobs and results are JSON, not arq's default pickle: a
dashboard decodes them with a JSON decoder, and write access to Redis is no longer code execution in
the worker that holds the LND macaroon. Every pool that enqueues or reads jobs (the API's, the
worker's, tools and tests) passes :data:`SERIALIZERS` to ``arq.create_pool`` / WorkerSettings.
The enqueue side imports this module, never the worker.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

CREATE_INVOICE = "create_invoice"
PAY_INVOICE = "pay_invoice"
DELIVER_WEBHOOK = "deliver_webhook"
NODE_INFO = "node_info"

ALL_FUNCTIONS = (CREATE_INVOICE, PAY_INVOICE, DELIVER_WEBHOOK, NODE_INFO)


def create_invoice_job_id(invoice_id: uuid.UUID | str) -> str:
    """One job per invoice row: enqueueing it again while it is queued or kept is a no-op."""
    return f"{CREATE_INVOICE}:{invoice_id}"


def pay_invoice_job_id(payment_id: uuid.UUID | str) -> str:
    return f"{PAY_INVOICE}:{payment_id}"


def deliver_webhook_job_id(delivery_id: int) -> str:
    return f"{DELIVER_WEBHOOK}:{delivery_id}"


def _encode_extra(value: Any) -> Any:
    """Values JSON has no type for. A failed job's result is its exception: kept as type + message."""
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": str(value)}
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def serialize(data: Any) -> bytes:
    return json.dumps(data, default=_encode_extra, separators=(",", ":")).encode()


def deserialize(data: bytes) -> Any:
    return json.loads(data)


SERIALIZERS: dict[str, Any] = {"job_serializer": serialize, "job_deserializer": deserialize}
