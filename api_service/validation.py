"""Input validation at the edge: pydantic models for bodies and query strings, errors as 400s."""

from __future__ import annotations

import json
import uuid
from typing import Any, TypeVar

import pydantic
from aiohttp import web
from pydantic.alias_generators import to_camel

from shared.errors import NotFound, UnsupportedMediaType, ValidationError

Model = TypeVar("Model", bound=pydantic.BaseModel)


def no_nul(value: str) -> str:
    """Refuse NUL characters: Postgres text cannot hold them, so they would fail in the database."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _field_errors(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        details.append(
            {
                "field": ".".join(str(part) for part in err["loc"]) or "body",
                "message": err["msg"].removeprefix("Value error, "),
                "type": err["type"],
            }
        )
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
    except RecursionError:  # nesting deeper than the parser's recursion limit
        raise ValidationError("The body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(details=_field_errors(exc)) from None


def path_uuid(request: web.Request, name: str = "id") -> uuid.UUID:
    """A UUID path segment. A malformed one is 404 like an unknown one: no such resource exists."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound() from None


def parse_query(request: web.Request, model: type[Model]) -> Model:
    try:
        return model.model_validate(dict(request.query))
    except pydantic.ValidationError as exc:
        raise ValidationError(details=_field_errors(exc)) from None


class ApiModel(pydantic.BaseModel):
    """Base of request models: camelCase keys on the wire, unknown fields refused.

    Response models derive from :class:`OutModel` instead."""

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel,
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


class OutModel(pydantic.BaseModel):
    """Base of response models: built from attributes or field names, dumped with camelCase keys
    (``model.model_dump(mode="json", by_alias=True)``, or :func:`dump`)."""

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        from_attributes=True,
    )


def dump(model: pydantic.BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a response model, camelCase keys."""
    return model.model_dump(mode="json", by_alias=True)
