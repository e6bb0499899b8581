"""The envelope of every /api/v1 response (DESIGN §3), and the error shapes of the protocols served
beside it.

Each operation in the OpenAPI registry names its error shape (``openapi.register(...,
error_model=LndHubError)``; the default is :class:`ErrorEnvelope`): the document shows it, and the
bad-input sweep (``tests/api/test_bad_input_sweep.py``) checks every 4xx of the route against it. The
models are strict and refuse unknown keys, so they describe exactly what a client receives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, Field, StrictBool
from pydantic.alias_generators import to_camel


def _exactly(value: bool) -> Any:
    """A JSON boolean equal to ``value`` (``Literal[True]`` would also accept ``1``)."""

    def check(given: bool) -> bool:
        if given is not value:
            raise ValueError(f"must be {str(value).lower()}")
        return given

    return Annotated[StrictBool, AfterValidator(check), Field(json_schema_extra={"const": value})]


class _Shape(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=to_camel, extra="forbid", strict=True)


class Meta(_Shape):
    request_id: str
    timestamp: datetime


class Pagination(_Shape):
    page: int
    page_size: int
    total_items: int
    total_pages: int


class ErrorBody(_Shape):
    code: str = Field(pattern=r"^[A-Z_]+$")
    message: str
    details: Any = Field(None, description="field errors (a list) for VALIDATION_ERROR; errorId for a 500")


class ErrorEnvelope(_Shape):
    """``{"success": false, "error": {code, message, details?}, "meta": {requestId, timestamp}}``"""

    success: _exactly(False)
    error: ErrorBody
    meta: Meta


class LndHubError(_Shape):
    """LndHub's error body, as lndhub.go answers it: ``{"error": true, "code": N, "message": "..."}``."""

    error: _exactly(True)
    code: int
    message: str


class LnurlError(_Shape):
    """LNURL's error body (LUD-06): ``{"status": "ERROR", "reason": "..."}``."""

    status: Literal["ERROR"]
    reason: str
