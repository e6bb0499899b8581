"""What LndHub clients put on the wire and expect back, beyond plain JSON.

- Bodies come as JSON or as a form (``application/x-www-form-urlencoded`` or ``multipart/form-data``);
  some clients send JSON without a content type. Every shape becomes one dict of fields.
- Hashes and preimages go out as a Node Buffer serialised to JSON, ``{"type": "Buffer", "data":
  [bytes]}``, where BlueWallet's server (LND's answers through grpc-js) sent one, and as hex elsewhere.
- 64-bit integers of LND messages go out as decimal strings (grpc-js ``longs: String``).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic
from aiohttp import web

from api_service.lndhub.errors import BAD_ARGUMENTS, LndHubError
from shared.errors import PayloadTooLarge

Model = TypeVar("Model", bound=pydantic.BaseModel)
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def js_buffer(data: bytes | None) -> dict[str, Any]:
    """A Node Buffer as JSON.stringify writes it."""
    return {"type": "Buffer", "data": list(data or b"")}


def int64(value: int) -> str:
    return str(int(value))


def bad_arguments(message: str = "Bad arguments") -> LndHubError:
    return LndHubError(BAD_ARGUMENTS, message, status=400)


async def _fields(request: web.Request) -> dict[str, Any]:
    if request.content_type in _FORMS:
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge() from None
        except ValueError:
            raise bad_arguments("The form body is malformed") from None
        # A field given twice is ambiguous (which amount?): refuse rather than pick one.
        if len(form) != len(set(form.keys())):
            raise bad_arguments("A form field is given more than once")
        return {key: value if isinstance(value, str) else None for key, value in form.items()}
    raw = await request.read()
    if not raw.strip():
        return {}
    if request.content_type != "application/json":
        # As the reference servers do: a body is read as JSON or as a form, nothing else.
        raise bad_arguments("Send the body as JSON or as a form")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise bad_arguments("The body is neither JSON nor a form") from None
    if not isinstance(data, dict):
        raise bad_arguments("The body must be a JSON object")
    return data


async def parse_body(request: web.Request, model: type[Model]) -> Model:
    """The request body (JSON or form) validated into ``model``; LndHub code 8 when it does not fit."""
    return validate(model, await _fields(request))


def parse_query(request: web.Request, model: type[Model]) -> Model:
    return validate(model, dict(request.query))


def validate(model: type[Model], data: dict[str, Any]) -> Model:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise bad_arguments(f"Bad arguments: {field}: {first['msg'].removeprefix('Value error, ')}") from None
