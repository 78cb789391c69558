"""One statement inserting rows of several tables at once (PostgreSQL), for the submission path.

Django's `bulk_create` prepares every field of every row through the ORM and
sends one statement per model; a batch of 500 jobs, their events and their
audit rows then costs more CPU than the work it records. Here unsaved model
instances become one JSON parameter per table, which PostgreSQL turns back
into rows of the table's type (`json_populate_recordset`), and a
data-modifying common table expression writes them all in one round trip.

One parameter per table, whatever the number of rows, keeps the statement's
text the same from call to call: psycopg parses it once and caches it,
where a `VALUES` list with a placeholder per value had its text (16,000
placeholders for a batch of 500 jobs) split by regular expressions at
every call.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection, models
from django.db.models.fields import AutoFieldMixin

# Column values JSON carries as they are; any other (UUID, datetime, IP address) goes as its text.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _fields(model) -> list[models.Field]:
    concrete = model._meta.concrete_fields
    return [f for f in concrete if not isinstance(f, AutoFieldMixin) and not getattr(f, "generated", False)]


def insert_rows(model, objects: list[models.Model], params: list[Any]) -> str:
    """`INSERT INTO <table> (<columns>) SELECT ...` for `objects`; their rows, as one JSON text, go to `params`.

    Every concrete field is written but an auto-incremented primary key or a
    generated column (left to the database); `auto_now`/`auto_now_add` fields get their value as
    `save()` would give it. A JSON field's value is nested in the row as it
    is (a value in it that JSON cannot encode raises TypeError); UUIDs,
    datetimes and IP addresses in the other columns go as their text.
    """
    fields = _fields(model)
    stamped = [f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    pairs = [(f.column, f.attname) for f in fields if not isinstance(f, models.JSONField)]
    json_pairs = [(f.column, f.attname) for f in fields if isinstance(f, models.JSONField)]
    rows = []
    for obj in objects:
        for field in stamped:
            field.pre_save(obj, True)
        row = {}
        for column, attname in pairs:
            value = getattr(obj, attname)
            row[column] = value if value.__class__ in _JSON_SCALARS else str(value)
        for column, attname in json_pairs:
            row[column] = getattr(obj, attname)
        rows.append(row)
    # No `default`: a value inside a JSON field that JSON cannot encode is refused, as the ORM refuses it.
    params.append(json.dumps(rows, allow_nan=False))
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(f.column) for f in fields)
    return f"INSERT INTO {table} ({columns}) SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s)"  # noqa: S608
