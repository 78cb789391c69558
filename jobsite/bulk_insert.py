"""One statement inserting rows of several tables at once (PostgreSQL), for the submission path.

Django's `bulk_create` prepares every field of every row through the ORM and
sends one statement per model; a batch of 500 jobs, their events and their
audit rows then costs more CPU than the work it records. Here unsaved model
instances become `VALUES` lists of plain parameters, and a data-modifying
common table expression writes them all in one round trip.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection, models
from django.db.models.fields import AutoFieldMixin


def _fields(model) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin)]


def _literal(value: Any) -> str | None:
    """SQL for a value that needs no parameter (NULL, a boolean, a number, the empty string), else None."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if value == "":
        return "''"
    return None


def insert_values(model, objects: list[models.Model], params: list[Any]) -> str:
    """`INSERT INTO <table> (<columns>) VALUES ...` for `objects`; their values are appended to `params`.

    JSON fields are sent as text cast to jsonb; NULLs, booleans, numbers and
    empty strings are written in the statement (a new job has a dozen of
    them), so that a one-row statement stays small enough for psycopg to
    cache its parsing; `auto_now`/`auto_now_add` fields get their value as
    `save()` would give it; an auto-incremented primary key is left to the
    database.
    """
    fields = _fields(model)
    quote = connection.ops.quote_name
    stamped = [f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    rows = []
    for obj in objects:
        for field in stamped:
            field.pre_save(obj, True)
        values = []
        for field in fields:
            value = getattr(obj, field.attname)
            if isinstance(field, models.JSONField):
                if value is None:
                    values.append("NULL")
                    continue
                params.append(json.dumps(value))
                values.append("%s::jsonb")
                continue
            literal = _literal(value)
            if literal is None:
                params.append(value)
                values.append("%s")
            else:
                values.append(literal)
        rows.append("(" + ", ".join(values) + ")")
    columns = ", ".join(quote(f.column) for f in fields)
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES {', '.join(rows)}"  # noqa: S608
