"""The whole contract between the API and the worker: job names, deterministic ids, arguments.

Arguments are row ids only (strings): no tokens, passwords, macaroons or keys, so any arq tool or
dashboard reading Redis can show them. The enqueue side imports this module, never the worker.
"""

from __future__ import annotations

import uuid

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
