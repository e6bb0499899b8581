"""RpcFailure: a refusal the servicers turn into a gRPC status with LND's code and text."""

from __future__ import annotations

import grpc


class RpcFailure(Exception):
    def __init__(self, text: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


def not_found_invoice() -> RpcFailure:
    return RpcFailure("unable to locate invoice", grpc.StatusCode.NOT_FOUND)
