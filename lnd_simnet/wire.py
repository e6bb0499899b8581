"""Simnet records -> LND wire messages (deprecated fields that clients still read are filled)."""

from __future__ import annotations

from lnd_simnet import bolt11codec
from lnd_simnet.models import ACCEPTED, SETTLED, SUCCEEDED, SimInvoice, SimPayment
from shared.lightning.protos import lightning_pb2 as ln

VERSION = "0.20.0-beta commit=lnd_simnet"
COMMIT_HASH = "lnd_simnet"
NO_PREIMAGE = "0" * 64
CHAN_ID = 1_099_511_693_312  # a regtest-looking short channel id (block 1, tx 1, output 0)
_FEATURE_NAMES = {
    8: "tlv-onion",
    14: "payment-addr",
    17: "multi-path-payments",
    25: "route-blinding",
    0: "data-loss-protect",
    12: "static-remote-key",
    23: "anchors",
}


def features(bits: tuple[int, ...] = bolt11codec.LND_FEATURE_BITS) -> dict[int, ln.Feature]:
    return {
        b: ln.Feature(
            name=_FEATURE_NAMES.get(b, "unknown"), is_required=b % 2 == 0, is_known=b in _FEATURE_NAMES
        )
        for b in bits
    }


_INVOICE_FEATURES = features()


def invoice(inv: SimInvoice) -> ln.Invoice:
    paid = inv.amt_paid_msat if inv.state in (SETTLED, ACCEPTED) else 0
    return ln.Invoice(
        memo=inv.memo,
        r_preimage=inv.preimage or b"",
        r_hash=inv.payment_hash,
        value=inv.value_msat // 1000,
        value_msat=inv.value_msat,
        settled=inv.state == SETTLED,
        creation_date=inv.creation_date,
        settle_date=inv.settle_date,
        payment_request=inv.payment_request,
        description_hash=inv.description_hash or b"",
        expiry=inv.expiry_s,
        cltv_expiry=inv.cltv_expiry,
        private=inv.private,
        add_index=inv.add_index,
        settle_index=inv.settle_index,
        amt_paid=paid,  # LND's quirk: the deprecated amt_paid carries msat
        amt_paid_sat=paid // 1000,
        amt_paid_msat=paid,
        state=inv.state,
        features=_INVOICE_FEATURES,
        payment_addr=inv.payment_addr,
    )


def payment(pay: SimPayment, payee_pubkey_hex: str) -> ln.Payment:
    succeeded = pay.status == SUCCEEDED
    fee_msat = pay.fee_msat if succeeded else 0
    msg = ln.Payment(
        payment_hash=pay.payment_hash.hex(),
        value=pay.value_msat // 1000,
        creation_date=pay.creation_time_ns // 1_000_000_000,
        fee=fee_msat // 1000,
        payment_preimage=pay.preimage.hex() if succeeded and pay.preimage else NO_PREIMAGE,
        value_sat=pay.value_msat // 1000,
        value_msat=pay.value_msat,
        payment_request=pay.payment_request,
        status=pay.status,
        fee_sat=fee_msat // 1000,
        fee_msat=fee_msat,
        creation_time_ns=pay.creation_time_ns,
        payment_index=pay.payment_index,
        failure_reason=pay.failure_reason,
    )
    if pay.htlc_status >= 0:
        total = pay.value_msat + pay.fee_msat
        hop = ln.Hop(
            chan_id=CHAN_ID,
            chan_capacity=0,
            amt_to_forward=pay.value_msat // 1000,
            fee=0,
            expiry=1080,
            amt_to_forward_msat=pay.value_msat,
            fee_msat=0,
            pub_key=payee_pubkey_hex,
            tlv_payload=True,
        )
        route = ln.Route(
            total_time_lock=1080,
            total_fees=pay.fee_msat // 1000,
            total_amt=total // 1000,
            hops=[hop],
            total_fees_msat=pay.fee_msat,
            total_amt_msat=total,
        )
        msg.htlcs.append(
            ln.HTLCAttempt(
                attempt_id=pay.payment_index,
                status=pay.htlc_status,
                route=route,
                attempt_time_ns=pay.attempt_time_ns,
                resolve_time_ns=pay.resolve_time_ns if pay.htlc_status else 0,
                preimage=pay.preimage if succeeded and pay.preimage else b"",
            )
        )
    return msg


def pay_req(pr: bolt11codec.PayReq) -> ln.PayReq:
    return ln.PayReq(
        destination=pr.payee.hex(),
        payment_hash=pr.payment_hash.hex(),
        num_satoshis=pr.amount_msat // 1000,
        timestamp=pr.timestamp,
        expiry=pr.expiry_s,
        description=pr.description,
        description_hash=pr.description_hash.hex() if pr.description_hash else "",
        cltv_expiry=pr.cltv_expiry,
        payment_addr=pr.payment_addr,
        num_msat=pr.amount_msat,
        features=features(pr.features),
    )
