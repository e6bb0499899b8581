"""Signed BOLT11 payment requests for tests, built with the ``bolt11`` package (as LND would shape them)."""

from __future__ import annotations

import hashlib
import os
import time

import bolt11
from bolt11 import Bolt11, MilliSatoshi
from bolt11.models.features import Feature, Features, FeatureState
from bolt11.models.tags import TagChar, Tags

# A fixed "outside node" key (not ours): invoices that look like they come from Bob.
BOB_PRIVKEY = "e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734"


def random_preimage() -> bytes:
    return os.urandom(32)


def make_payment_request(
    *,
    amount_msat: int | None = 100_000,
    currency: str = "bcrt",
    payment_hash: bytes | None = None,
    description: str = "test",
    expiry_s: int = 3600,
    timestamp: int | None = None,
    privkey_hex: str = BOB_PRIVKEY,
) -> tuple[str, bytes]:
    """(bolt11 string, payment hash). ``amount_msat=None`` makes a zero-amount invoice."""
    payment_hash = payment_hash or hashlib.sha256(random_preimage()).digest()
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash.hex())
    tags.add(TagChar.payment_secret, os.urandom(32).hex())
    tags.add(TagChar.description, description)
    tags.add(TagChar.expire_time, expiry_s)
    tags.add(TagChar.min_final_cltv_expiry, 80)
    tags.add(
        TagChar.features,
        Features.from_feature_list(
            {
                Feature.var_onion_optin: FeatureState.required,
                Feature.payment_secret: FeatureState.required,
            }
        ),
    )
    invoice = Bolt11(
        currency=currency,
        date=int(time.time()) if timestamp is None else timestamp,
        amount_msat=MilliSatoshi(amount_msat) if amount_msat else None,
        tags=tags,
    )
    return bolt11.encode(invoice, privkey_hex), payment_hash


def expired_payment_request(**kwargs) -> tuple[str, bytes]:
    return make_payment_request(timestamp=int(time.time()) - 7200, expiry_s=60, **kwargs)
