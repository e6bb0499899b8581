"""The simulated network: nodes sharing one store, one channel, the payment engine."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import coincurve
import grpc

from lnd_simnet import bolt11codec
from lnd_simnet.errors import RpcFailure
from lnd_simnet.models import ACCEPTED, CANCELED, OPEN, REASON_INCORRECT_PAYMENT_DETAILS, SETTLED, Balances
from lnd_simnet.node import CURRENCY, Node
from lnd_simnet.payments import PaymentEngine
from lnd_simnet.store import Store

log = logging.getLogger(__name__)
NODE_NAMES = ("alice", "bob")


@dataclass(frozen=True, slots=True)
class Settings:
    capacity_sat: int = 10_000_000
    alice_local_sat: int = 5_000_000
    fee_base_msat: int = 1000
    fee_ppm: int = 1
    delay_ms: int = 20
    wallet_balance_sat: int = 100_000_000
    block_height: int = 1000


class Network:
    def __init__(self, settings: Settings, store: Store, keys: dict[str, coincurve.PrivateKey]) -> None:
        self.settings = settings
        self.store = store
        self.nodes: dict[str, Node] = {}
        cap_msat = settings.capacity_sat * 1000
        alice_msat = settings.alice_local_sat * 1000
        initial = {"alice": (alice_msat, cap_msat - alice_msat), "bob": (cap_msat - alice_msat, alice_msat)}
        for name, key in keys.items():
            balances = store.load_balances(name)
            if balances is None:
                balances = Balances(name, *initial[name])
                store.write(balances=[balances])
            node = Node(name, key, store, balances)
            node.load()
            self.nodes[name] = node
        self._by_pubkey = {n.pubkey: n for n in self.nodes.values()}
        self.payments = PaymentEngine(self)
        self._expiry_task: asyncio.Task | None = None

    def start(self) -> None:
        """Resume interrupted payments and start the invoice expiry watcher (inside the loop)."""
        for node in self.nodes.values():
            for pay in list(node.payments.values()):
                self.payments.resume(pay)
        self._expiry_task = asyncio.get_running_loop().create_task(self._expire_loop())

    async def _expire_loop(self) -> None:
        while True:
            for node in self.nodes.values():
                try:
                    node.expire_due()
                except Exception:
                    log.exception("expiry sweep failed")
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._expiry_task:
            self._expiry_task.cancel()
        await self.payments.close()
        self.store.close()

    def node_by_pubkey(self, pubkey: bytes) -> Node | None:
        return self._by_pubkey.get(pubkey)

    def decode_payreq(self, text: str) -> bolt11codec.PayReq:
        """Decode a BOLT11 string; invoices of our own nodes are answered from memory."""
        for node in self.nodes.values():
            inv = node.by_payreq.get(text)
            if inv is not None:
                return bolt11codec.PayReq(
                    network="regtest",
                    amount_msat=inv.value_msat,
                    timestamp=inv.creation_date,
                    payment_hash=inv.payment_hash,
                    payment_addr=inv.payment_addr,
                    description="" if inv.description_hash else inv.memo,
                    description_hash=inv.description_hash,
                    expiry_s=inv.expiry_s,
                    cltv_expiry=inv.cltv_expiry,
                    features=bolt11codec.LND_FEATURE_BITS,
                    payee=node.pubkey,
                )
        return bolt11codec.decode(text)

    # ---- hold invoices --------------------------------------------------------------------
    def settle_invoice(self, node: Node, preimage: bytes) -> None:
        if len(preimage) != 32:
            raise RpcFailure("unable to parse preimage: preimage must be exactly 32 bytes")
        inv = node.invoices.get(hashlib.sha256(preimage).digest())
        if inv is None:
            raise RpcFailure("unable to locate invoice")
        if inv.state == SETTLED:
            return
        if inv.state == CANCELED:
            raise RpcFailure("invoice already canceled")
        if inv.state == OPEN:
            raise RpcFailure("invoice still open")
        pay = self.payments.held_payment_for(node, inv)
        if pay is None:  # cannot happen unless the store was edited
            raise RpcFailure("no htlcs accepted for invoice")
        self.payments.settle(pay, node, inv, preimage)

    def cancel_invoice(self, node: Node, payment_hash: bytes) -> None:
        inv = node.invoices.get(payment_hash)
        if inv is None:
            raise RpcFailure("unable to locate invoice")
        if inv.state == SETTLED:
            raise RpcFailure("invoice already settled")
        if inv.state == CANCELED:
            return
        pay = self.payments.held_payment_for(node, inv) if inv.state == ACCEPTED else None
        inv.state = CANCELED
        inv.htlc_payer = None
        if pay is not None:
            self.payments.fail(pay, REASON_INCORRECT_PAYMENT_DETAILS, extra_invoice=(node, inv))
        else:
            node.store.write([inv], node=node.name)
        node.publish_invoice(inv, to_all=False)

    def release(self, payment_hash: bytes, outcome: str, reason: str = "no_route") -> None:
        """Release a payment stuck by simnet:hold, whichever node sent it."""
        for node in self.nodes.values():
            pay = node.payments.get(payment_hash)
            if pay is not None and pay.phase == "held":
                self.payments.release(pay, outcome, reason)
                return
        raise RpcFailure("no held payment with that hash", grpc.StatusCode.NOT_FOUND)


def open_network(data_dir: Path, settings: Settings, keys: dict[str, coincurve.PrivateKey]) -> Network:
    return Network(settings, Store(data_dir / "simnet.sqlite3"), keys)


__all__ = ["CURRENCY", "NODE_NAMES", "Network", "Settings", "open_network"]
