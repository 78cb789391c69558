"""Error bodies as the seed services built on FastAPI answered them (seeds 000/001, 003, 004).

Their clients read `detail`: a string, an object, or, for a request that
fails validation, a list of `{loc, msg, type}` with status 422. The contract
adds `detail` (and uses 422 for invalid input) on top of jobsite's envelope,
which stays whole, `request_id` included. An unknown query parameter stays a
400 on every surface.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings

from jobsite.api.views import UnknownQueryParameters

# Keys of jobsite's validation details that are facts about the error, not fields.
FACT_KEYS = frozenset({"valid_values", "valid_parameters"})

# DRF's error codes as pydantic names the same failures.
PYDANTIC_TYPES = {
    "required": "missing",
    "null": "missing",
    "max_length": "string_too_long",
    "min_length": "too_short",
    "blank": "string_too_short",
    "max_value": "less_than_equal",
    "min_value": "greater_than_equal",
    "invalid_choice": "enum",
    "not_a_list": "list_type",
    "empty": "too_short",
    "max_string_length": "string_too_long",
    "int_parsing": "int_parsing",
    "less_than_equal": "less_than_equal",
    "greater_than_equal": "greater_than_equal",
    "uuid_parsing": "uuid_parsing",
    "enum": "enum",
    "json_invalid": "json_invalid",
    "dict_type": "dict_type",
    "list_type": "list_type",
}


class InvalidInput(exceptions.ValidationError):
    """A validation error located outside the body or the query string (`location`: "path", "header")."""

    def __init__(self, detail, *, location: str, code=None):
        super().__init__(detail, code=code)
        self.location = location


def validation_items(detail: Any, loc: list) -> Iterator[dict]:
    """FastAPI's `[{loc, msg, type}]` for DRF validation details (nested fields extend `loc`)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in FACT_KEYS:
                continue
            yield from validation_items(value, loc if key == api_settings.NON_FIELD_ERRORS_KEY else [*loc, key])
    elif isinstance(detail, list):
        for item in detail:
            yield from validation_items(item, loc)
    else:
        code = getattr(detail, "code", None)
        yield {"loc": loc, "msg": str(detail), "type": PYDANTIC_TYPES.get(code, "value_error")}


class FastApiErrors:
    """The envelope plus `detail`; invalid input is a 422 listing `{loc, msg, type}`.

    `field_locations` moves a top-level field of the details elsewhere in
    `loc` (e.g. `input_data` to the body's root when the body is the input).
    """

    field_locations: dict[str, list] = {}

    def render(self, exc, response: Response, view) -> Response:
        body = dict(response.data)
        if isinstance(exc, UnknownQueryParameters):
            body["detail"] = body["message"]
        elif isinstance(exc, exceptions.ValidationError):
            response.status_code, body["detail"] = self.validation(exc, view)
        elif isinstance(exc, exceptions.ParseError):
            response.status_code = 422
            body["detail"] = [{"loc": ["body"], "msg": body["message"], "type": "json_invalid"}]
        else:
            body["detail"] = self.detail(exc, body, view)
        response.data = body
        return response

    def detail(self, exc, body: dict, view) -> Any:
        """`detail` for an error other than invalid input: the exception's own words, else the envelope's message."""
        if isinstance(exc, exceptions.APIException) and isinstance(exc.detail, str):
            return str(exc.detail)
        return body["message"]

    def validation(self, exc: exceptions.ValidationError, view) -> tuple[int, Any]:
        """Status and `detail` for invalid input."""
        return 422, self.validation_list(exc, view)

    def validation_list(self, exc: exceptions.ValidationError, view) -> list[dict]:
        location = getattr(exc, "location", None) or ("query" if view.request.method in ("GET", "HEAD") else "body")
        return self.items(exc.detail, [location])

    def items(self, detail: Any, loc: list) -> list[dict]:
        """`[{loc, msg, type}]` for validation details, each `loc` starting with `loc`."""
        if not isinstance(detail, dict):
            detail = {api_settings.NON_FIELD_ERRORS_KEY: detail}
        items = []
        for field, value in detail.items():
            if field in FACT_KEYS:
                continue
            if field in self.field_locations:
                where = [*loc, *self.field_locations[field]]
            elif field == api_settings.NON_FIELD_ERRORS_KEY:
                where = loc
            else:
                where = [*loc, field]
            items.extend(validation_items(value, where))
        return items


def first_message(exc: exceptions.ValidationError) -> tuple[str, str]:
    """The first field named in a validation error and its first message."""
    detail = exc.detail if isinstance(exc.detail, dict) else {api_settings.NON_FIELD_ERRORS_KEY: exc.detail}
    for field, value in detail.items():
        if field in FACT_KEYS:
            continue
        item = next(validation_items(value, []), None)
        if item is not None:
            return field, item["msg"]
    return api_settings.NON_FIELD_ERRORS_KEY, "The request is invalid."


def enum_error(field: str, value: str, valid: list[str], *, location: str) -> InvalidInput:
    """A value outside its set, as pydantic words it ("Input should be 'a', 'b' or 'c'"), listing `valid_values`."""
    quoted = [f"'{item}'" for item in valid]
    if not quoted:
        message = f"No value is accepted for {field} at the moment; got {value!r}."
    elif len(quoted) == 1:
        message = f"Input should be {quoted[0]}; got {value!r}."
    else:
        message = f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}; got {value!r}."
    return InvalidInput(
        {field: [exceptions.ErrorDetail(message, code="enum")], "valid_values": valid}, location=location
    )
