"""The CloudFormation resource provider schemas cfn-lint ships, and property values checked against them.

cfn-lint carries the registry schema of every resource type per region
(`cfnlint/data/schemas/providers/<region>.json` maps a type to a file under `resources/`). The change
set reads `createOnlyProperties` from them (a change means replacement); `invalid_properties` checks
a transformed template's property values against them (types, enums, required, patterns, lengths,
ranges) before anything is provisioned, as CloudFormation's resource handlers would refuse them.
The files are read directly: importing the `cfnlint` package costs seconds (it loads every rule).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import regex  # type: ignore[import-untyped]
from jsonschema import Draft7Validator, ValidationError  # type: ignore[import-untyped]
from jsonschema.validators import extend  # type: ignore[import-untyped]

from rehearsal.base.errors import UserError
from rehearsal.cloud.template import NO_VALUE, Resolver, TransformedTemplate, UnresolvedReferenceError

_INTRINSICS = frozenset(
    {
        "Ref",
        "Condition",
        *(f"Fn::{name}" for name in ("GetAtt", "Sub", "Join", "Select", "Split", "If", "Equals", "Not")),
        *(f"Fn::{name}" for name in ("And", "Or", "FindInMap", "Base64", "GetAZs", "ToJsonString")),
        *(f"Fn::{name}" for name in ("ImportValue", "Cidr", "Length")),
    }
)
# Checks whose failure is about the value itself: skipped when the value is only known at deploy time.
_STRUCTURAL = frozenset({"required", "additionalProperties", "dependencies", "dependentRequired"})


@dataclass(frozen=True, kw_only=True)
class ResourceSchema:
    """One resource type's registry schema, and the parts a change set reads."""

    type_name: str
    document: Mapping[str, Any]
    create_only: tuple[str, ...]  # JSON pointers, `/properties/QueueName`
    conditional_create_only: tuple[str, ...]


def _schemas_dir() -> Path:
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("cfn-lint is not installed: run `make install` (its resource schemas are needed)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "schemas"


@cache
def _index(region: str) -> Mapping[str, str]:
    path = _schemas_dir() / "providers" / f"{region}.json"
    try:
        index: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise UserError(f"cfn-lint ships no resource schemas for region {region}: is it a region?") from error
    return index


@cache
def resource_schema(type_name: str, region: str) -> ResourceSchema | None:
    """The registry schema of `type_name` in `region`; None for a type that has none (custom resources)."""
    schema_id = _index(region).get(type_name)
    if schema_id is None:
        return None
    path = _schemas_dir() / "resources" / f"{schema_id}.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    return ResourceSchema(
        type_name=type_name,
        document=document,
        create_only=tuple(document.get("createOnlyProperties") or ()),
        conditional_create_only=tuple(document.get("conditionalCreateOnlyProperties") or ()),
    )


# ---------------------------------------------------------------- property values


class _Unknown:
    """A value CloudFormation only knows while deploying (another resource's Ref or attribute)."""

    def __repr__(self) -> str:
        return "<known at deploy time>"


UNKNOWN = _Unknown()


def _numeric(value: Any, pattern: str) -> bool:
    return isinstance(value, str) and re.fullmatch(pattern, value.strip()) is not None


# CloudFormation converts template values between scalars: "30" is a valid Integer, 5 a valid String.
# cfn-lint accepts the same conversions (its own type checker); a plain JSON-schema one would not.
_TYPES = Draft7Validator.TYPE_CHECKER.redefine_many(
    {
        "integer": lambda _c, v: (isinstance(v, int) and not isinstance(v, bool)) or _numeric(v, r"-?\d+"),
        "number": lambda _c, v: (
            (isinstance(v, int | float) and not isinstance(v, bool))
            or _numeric(v, r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
        ),
        "boolean": lambda _c, v: (
            isinstance(v, bool) or (isinstance(v, str) and v.lower() in ("true", "false"))
        ),
        "string": lambda _c, v: isinstance(v, str | int | float | bool),
    }
)


def _pattern(_validator: Any, pattern: str, instance: Any, _schema: Any) -> Iterator[ValidationError]:
    """The schemas' patterns are ECMA-262 (`\\p{L}`...): matched with `regex`, as cfn-lint matches them."""
    if isinstance(instance, str) and not regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Any, instance: Any, _schema: Any
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if regex.search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _as_number(keyword: str) -> Any:
    """A numeric keyword that reads a numeric string as its number, as the type checker accepts it."""
    check = Draft7Validator.VALIDATORS[keyword]

    def validate(validator: Any, limit: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        if isinstance(instance, str):
            try:
                instance = float(instance)
            except ValueError:
                return
        yield from check(validator, limit, instance, schema)

    return validate


def _as_text(keyword: str) -> Any:
    """A length keyword that reads a number or boolean as the string CloudFormation makes of it."""
    check = Draft7Validator.VALIDATORS[keyword]

    def validate(validator: Any, limit: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        if isinstance(instance, bool | int | float):
            instance = json.dumps(instance)
        yield from check(validator, limit, instance, schema)

    return validate


_NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_Validator = extend(
    Draft7Validator,
    validators={
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        **{keyword: _as_number(keyword) for keyword in _NUMERIC},
        **{keyword: _as_text(keyword) for keyword in ("minLength", "maxLength")},
    },
    type_checker=_TYPES,
)


def _contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_contains_unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_unknown(item) for item in value)
    return False


def _known_values(value: Any, resolver: Resolver) -> Any:
    """`value` with what the parameters settle resolved, and what only a deploy knows as `UNKNOWN`."""
    if isinstance(value, list):
        items = [_known_values(item, resolver) for item in value]
        return [item for item in items if item is not NO_VALUE]
    if isinstance(value, str):
        # A dynamic reference ({{resolve:ssm:...}}) is replaced by CloudFormation while deploying.
        return UNKNOWN if "{{resolve:" in value else value
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)) in _INTRINSICS:
        try:
            return _known_values(resolver.resolve(value), resolver)
        except (UnresolvedReferenceError, KeyError, IndexError, TypeError, ValueError):
            return UNKNOWN
    known = {key: _known_values(item, resolver) for key, item in value.items()}
    return {key: item for key, item in known.items() if item is not NO_VALUE}


@cache
def _validator(type_name: str, region: str) -> Any:
    schema = resource_schema(type_name, region)
    return _Validator(dict(schema.document)) if schema is not None else None


def _errors(validator: Any, properties: Any) -> Iterator[ValidationError]:
    for error in validator.iter_errors(properties):
        if error.validator not in _STRUCTURAL and _contains_unknown(error.instance):
            continue
        if error.validator in ("anyOf", "oneOf", "allOf") and _contains_unknown(error.instance):
            continue
        yield error


def _describe(logical_id: str, type_name: str, error: ValidationError) -> str:
    path = "/".join(str(part) for part in error.absolute_path)
    where = f"{logical_id} ({type_name}) property {path}" if path else f"{logical_id} ({type_name})"
    return f"{where}: {error.message}"


def invalid_properties(template: TransformedTemplate, region: str) -> list[str]:
    """One line per property value the resource's schema refuses (what AWS would reject), in template order.

    Values that refer to other resources are checked once known, by the resource handler: here they
    pass, like cfn-lint passes them.
    """
    resolver = Resolver.for_template(template)
    problems: list[str] = []
    for logical_id, resource in template.resources.items():
        type_name = str(resource.get("Type", ""))
        validator = _validator(type_name, region)
        if validator is None or not resolver.resource_included(resource):
            continue
        properties = _known_values(resource.get("Properties") or {}, resolver)
        for error in sorted(_errors(validator, properties), key=lambda e: list(map(str, e.absolute_path))):
            problems.append(_describe(logical_id, type_name, error))
    return problems
