"""Input validation at the edge: pydantic models for bodies and query strings, errors as 400s."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic

from aiohttp import web
from shared.errors import UnsupportedMediaType, ValidationError

Model = TypeVar("Model", bound=pydantic.BaseModel)


def _field_errors(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        details.append({
            "field": ".".join(str(part) for part in err["loc"]) or "body",
            "message": err["msg"].removeprefix("Value error, "),
            "type": err["type"],
        })
    return details


async def parse_body(request: web.Request, model: type[Model]) -> Model:
    """The JSON body validated into ``model``; 415 for another content type, 400 for bad JSON or fields."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType()
    raw = await request.read()
    try:
        data = json.loads(raw) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValidationError("The body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(details=_field_errors(exc)) from None


def parse_query(request: web.Request, model: type[Model]) -> Model:
    try:
        return model.model_validate(dict(request.query))
    except pydantic.ValidationError as exc:
        raise ValidationError(details=_field_errors(exc)) from None


class ApiModel(pydantic.BaseModel):
    """Base of request models: camelCase keys on the wire, unknown fields refused."""

    model_config = pydantic.ConfigDict(
        alias_generator=pydantic.alias_generators.to_camel,
        populate_by_name=False,
        extra="forbid",
        str_strip_whitespace=False,
        strict=False,
    )


class PageQuery(ApiModel):
    page: int = pydantic.Field(1, ge=1, le=1_000_000)
    page_size: int = pydantic.Field(20, ge=1, le=100)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size
