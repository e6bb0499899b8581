"""Our rows as LndHub clients expect them (field names and shapes of BlueWallet's server).

Amounts are whole sats on this protocol. Incoming amounts are floor(msat / 1000), as everywhere in
the API; what a payment spent (value, fee) is rounded *up*, so that a client subtracting it from the
balance it saw never shows more than the floor of the real balance.
"""

from __future__ import annotations

import time
from typing import Any

from api_service.lndhub.wire import int64, js_buffer
from shared.bolt11 import DecodedPaymentRequest
from shared.ledger import MSAT_PER_SAT

STALE_UNPAID_S = 5 * 24 * 3600  # BlueWallet's server stops reporting ispaid for unpaid invoices this old
IN_TRANSITION_MEMO = "Payment in transition"


def _floor_sat(msat: int) -> int:
    return msat // MSAT_PER_SAT


def _ceil_sat(msat: int) -> int:
    return -(-msat // MSAT_PER_SAT)


def _unix(moment: Any) -> int:
    return int(moment.timestamp())


def added_invoice(invoice: Any) -> dict[str, Any]:
    """POST /addinvoice: LND's AddInvoiceResponse as BlueWallet's server passed it on, plus the hex hash."""
    return {
        "r_hash": js_buffer(invoice.payment_hash),
        "payment_request": invoice.payment_request,
        "pay_req": invoice.payment_request,
        "add_index": int64(invoice.add_index or 0),
        "payment_hash": invoice.payment_hash.hex(),
    }


def user_invoice(invoice: Any, *, now: float | None = None) -> dict[str, Any]:
    """One entry of GET /getuserinvoices. ``ispaid`` is left out for an unpaid invoice older than
    five days, as BlueWallet's server does (it stopped asking the node about those)."""
    now = time.time() if now is None else now
    paid_msat = max(invoice.amount_msat, invoice.amount_paid_msat or 0)
    entry: dict[str, Any] = {
        "r_hash": js_buffer(invoice.payment_hash),
        "payment_request": invoice.payment_request,
        "pay_req": invoice.payment_request,
        "add_index": int64(invoice.add_index or 0),
        "description": invoice.memo,
        "payment_hash": invoice.payment_hash.hex(),
        "amt": _floor_sat(paid_msat if invoice.state == "settled" else invoice.amount_msat),
        "expire_time": invoice.expiry_s,
        "timestamp": _unix(invoice.created_at),
        "type": "user_invoice",
    }
    if invoice.state == "settled":
        entry["ispaid"] = True
    elif now - _unix(invoice.created_at) < STALE_UNPAID_S:
        entry["ispaid"] = False
    return entry


def transaction(payment: Any) -> dict[str, Any]:
    """One entry of GET /gettxs: a paid invoice, or one still in transition (its hold counted)."""
    done = payment.state == "succeeded"
    fee_msat = (payment.fee_msat or 0) if done else payment.fee_limit_msat
    return {
        "type": "paid_invoice",
        "value": _ceil_sat(payment.amount_msat + fee_msat),
        "fee": _ceil_sat(fee_msat),
        "timestamp": _unix(payment.created_at),
        "memo": payment.memo if done else IN_TRANSITION_MEMO,
        "payment_preimage": payment.preimage.hex() if done and payment.preimage else None,
        "payment_hash": js_buffer(payment.payment_hash),
        "r_hash": js_buffer(payment.payment_hash),
    }


def paid_invoice(payment: dict[str, Any], decoded: DecodedPaymentRequest) -> dict[str, Any]:
    """POST /payinvoice success: LND's SendResponse fields (preimage and hash as Buffers, the route's
    totals with fees included) and the request as BlueWallet's server answered it."""
    amount_msat = payment["amountMsat"]
    fee_msat = payment["feeMsat"] or 0
    return {
        "payment_error": "",
        "payment_preimage": js_buffer(bytes.fromhex(payment["preimage"])),
        "payment_hash": js_buffer(bytes.fromhex(payment["paymentHash"])),
        "payment_route": {
            "total_amt": _floor_sat(amount_msat + fee_msat),
            "total_fees": _floor_sat(fee_msat),
            "total_amt_msat": int64(amount_msat + fee_msat),
            "total_fees_msat": int64(fee_msat),
            "total_time_lock": 0,
            "hops": [],
        },
        "pay_req": payment["paymentRequest"],
        "payment_request": payment["paymentRequest"],
        "num_satoshis": _floor_sat(amount_msat),
        "description": decoded.description or "",
        "description_hash": decoded.description_hash.hex() if decoded.description_hash else "",
    }


def decoded_invoice(decoded: DecodedPaymentRequest) -> dict[str, Any]:
    """GET /decodeinvoice: LND's PayReq fields (64-bit numbers as strings, as grpc-js gave them)."""
    amount_msat = decoded.amount_msat or 0
    return {
        "destination": decoded.payee,
        "payment_hash": decoded.payment_hash.hex(),
        "num_satoshis": int64(_floor_sat(amount_msat)),
        "num_msat": int64(amount_msat),
        "timestamp": int64(decoded.timestamp),
        "expiry": int64(decoded.expiry_s),
        "description": decoded.description or "",
        "description_hash": decoded.description_hash.hex() if decoded.description_hash else "",
        "fallback_addr": "",
        "cltv_expiry": int64(decoded.min_final_cltv_expiry),
        "route_hints": [],
        "features": {},
    }


def node_info(result: dict[str, Any]) -> dict[str, Any]:
    """GET /getinfo: the part of LND's GetInfoResponse a custodial client uses (identity_pubkey above all)."""
    return {
        "identity_pubkey": str(result.get("identity_pubkey", "")),
        "alias": str(result.get("alias", "")),
        "block_height": int(result.get("block_height", 0)),
        "synced_to_chain": bool(result.get("synced_to_chain", False)),
        "num_active_channels": int(result.get("num_active_channels", 0)),
        "version": str(result.get("version", "")),
        "chains": [{"chain": "bitcoin", "network": str(result.get("network", ""))}],
        "uris": [],
    }
