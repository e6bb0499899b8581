"""Protobuf messages from LND -> our frozen value types (shared.lightning.types)."""

from __future__ import annotations

from shared.lightning.protos import lightning_pb2 as ln
from shared.lightning.types import (
    ChannelBalance,
    DecodedPayReq,
    Invoice,
    InvoiceState,
    NodeInfo,
    PaymentStatus,
    PaymentUpdate,
    WalletBalance,
)

_INVOICE_STATES = {
    ln.Invoice.OPEN: InvoiceState.OPEN,
    ln.Invoice.SETTLED: InvoiceState.SETTLED,
    ln.Invoice.CANCELED: InvoiceState.CANCELED,
    ln.Invoice.ACCEPTED: InvoiceState.ACCEPTED,
}
_PAYMENT_STATUSES = {
    ln.Payment.IN_FLIGHT: PaymentStatus.IN_FLIGHT,
    ln.Payment.SUCCEEDED: PaymentStatus.SUCCEEDED,
    ln.Payment.FAILED: PaymentStatus.FAILED,
    ln.Payment.INITIATED: PaymentStatus.INITIATED,
    # UNKNOWN is never sent by LND; treat it as "not final yet".
    ln.Payment.UNKNOWN: PaymentStatus.IN_FLIGHT,
}
_NO_PREIMAGE = "0" * 64


def node_info(msg: ln.GetInfoResponse) -> NodeInfo:
    network = msg.chains[0].network if msg.chains else ("testnet" if msg.testnet else "mainnet")
    return NodeInfo(
        identity_pubkey=msg.identity_pubkey,
        alias=msg.alias,
        network=network,
        block_height=msg.block_height,
        version=msg.version,
        synced_to_chain=msg.synced_to_chain,
        num_active_channels=msg.num_active_channels,
    )


def invoice(msg: ln.Invoice) -> Invoice:
    value_msat = msg.value_msat or msg.value * 1000
    return Invoice(
        payment_hash=bytes(msg.r_hash),
        payment_request=msg.payment_request,
        memo=msg.memo,
        value_msat=value_msat,
        amt_paid_msat=msg.amt_paid_msat,
        state=_INVOICE_STATES.get(msg.state, InvoiceState.OPEN),
        add_index=msg.add_index,
        settle_index=msg.settle_index,
        creation_date=msg.creation_date,
        settle_date=msg.settle_date,
        expiry_s=msg.expiry,
        preimage=bytes(msg.r_preimage) or None,
        description_hash=bytes(msg.description_hash) or None,
    )


def payment_update(msg: ln.Payment) -> PaymentUpdate:
    status = _PAYMENT_STATUSES.get(msg.status, PaymentStatus.IN_FLIGHT)
    preimage = None
    if status is PaymentStatus.SUCCEEDED and msg.payment_preimage and msg.payment_preimage != _NO_PREIMAGE:
        preimage = bytes.fromhex(msg.payment_preimage)
    reason = None
    if msg.failure_reason != ln.FAILURE_REASON_NONE:
        reason = ln.PaymentFailureReason.Name(msg.failure_reason).removeprefix("FAILURE_REASON_")
    return PaymentUpdate(
        payment_hash=bytes.fromhex(msg.payment_hash),
        status=status,
        value_msat=msg.value_msat,
        fee_msat=msg.fee_msat,
        preimage=preimage,
        failure_reason=reason,
        payment_index=msg.payment_index,
        creation_time_ns=msg.creation_time_ns,
    )


def channel_balance(msg: ln.ChannelBalanceResponse) -> ChannelBalance:
    return ChannelBalance(
        local_msat=msg.local_balance.msat,
        remote_msat=msg.remote_balance.msat,
        unsettled_local_msat=msg.unsettled_local_balance.msat,
        pending_open_local_msat=msg.pending_open_local_balance.msat,
    )


def wallet_balance(msg: ln.WalletBalanceResponse) -> WalletBalance:
    return WalletBalance(
        total_sat=msg.total_balance,
        confirmed_sat=msg.confirmed_balance,
        unconfirmed_sat=msg.unconfirmed_balance,
    )


def decoded_pay_req(msg: ln.PayReq) -> DecodedPayReq:
    return DecodedPayReq(
        destination=msg.destination,
        payment_hash=bytes.fromhex(msg.payment_hash),
        amount_msat=msg.num_msat or msg.num_satoshis * 1000,
        timestamp=msg.timestamp,
        expiry_s=msg.expiry,
        description=msg.description,
        description_hash=bytes.fromhex(msg.description_hash) if msg.description_hash else None,
        payment_addr=bytes(msg.payment_addr),
        cltv_expiry=msg.cltv_expiry,
    )
