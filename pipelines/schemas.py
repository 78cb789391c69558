"""JSON Schemas in pipeline configs: checked on write, compiled once, never fetched from anywhere.

A `$ref` (or `$dynamicRef`) in a pipeline's `input_schema` must resolve inside
the schema itself: a JSON pointer (`#/$defs/name`), an anchor (`#name`) or the
`$id` of one of its own subschemas. Anything else would make the server fetch a
URL (or read a file) while it validates a submission, so it is refused when the
pipeline is written, and a validator built here never retrieves anything.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
import referencing.exceptions
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# A registry that holds no schema and retrieves nothing: every reference is
# looked up in the schema being validated (and the JSON Schema meta-schemas
# jsonschema bundles), never fetched.
NO_RETRIEVAL = Registry()
REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")


def _validate_reference(keyword: str):
    """Wrap a reference keyword so that a reference that does not resolve is a validation error.

    Pipelines stored before references were checked on write may still hold
    one; their submissions get a 400 rather than a 500.
    """
    follow = jsonschema.Draft202012Validator.VALIDATORS[keyword]

    def validate(validator, reference, instance, schema):
        try:
            yield from follow(validator, reference, instance, schema)
        except referencing.exceptions.Unresolvable:
            yield ValidationError(f"The schema's {keyword} {reference!r} does not resolve inside the schema.")

    return validate


LocalValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {keyword: _validate_reference(keyword) for keyword in REFERENCE_KEYWORDS},
)


def unresolved_references(schema: Any) -> list[str]:
    """Describe each `$ref`/`$dynamicRef` in `schema` that does not resolve inside the schema itself."""
    if not isinstance(schema, dict):
        return []
    problems: list[str] = []

    def visit(resource: Resource, resolver) -> None:
        for keyword in REFERENCE_KEYWORDS:
            reference = resource.contents.get(keyword) if isinstance(resource.contents, dict) else None
            if isinstance(reference, str) and not _resolves(resolver, reference):
                problems.append(
                    f"{keyword} {reference!r} does not resolve inside the schema: only references within it "
                    "(such as '#/$defs/name') are allowed."
                )
        for subresource in resource.subresources():
            visit(subresource, resolver.in_subresource(subresource))

    root = DRAFT202012.create_resource(schema)
    visit(root, NO_RETRIEVAL.resolver_with_root(root))
    return problems


def _resolves(resolver, reference: str) -> bool:
    try:
        resolver.lookup(reference)
    except (referencing.exceptions.Unresolvable, ValueError):  # ValueError: not a URI at all
        return False
    return True


def schema_errors(schema: Any) -> list[str]:
    """List what is wrong with `schema` as a pipeline's input schema (empty when it is fine)."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [f"Not a valid JSON Schema: {exc.message}"]
    return unresolved_references(schema)


def input_validator(schema: Any) -> Validator:
    """A validator of job input against `schema` that resolves references only inside the schema.

    Compiled once per distinct schema and cached; it never fetches a URL or
    reads a file, and a reference that does not resolve is a validation error.
    """
    return _compiled(json.dumps(schema, sort_keys=True, separators=(",", ":")))


@lru_cache(maxsize=256)
def _compiled(canonical_schema: str) -> Validator:
    return LocalValidator(json.loads(canonical_schema), registry=NO_RETRIEVAL)
