"""The routes of a REST API's OpenAPI body, and the checks API Gateway makes before calling a function.

`Gateway` matches a request to a `Route` and calls `validate_request`; a failed check raises
`ErrorAnswer`, which the gateway turns into API Gateway's error response.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft4Validator  # type: ignore[import-untyped]

from rehearsal.cloud.descriptions import RestApi

_ANY = "x-amazon-apigateway-any-method"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_FUNCTION_IN_URI = re.compile(r"/functions/(arn:[^/]+)/invocations$")


@dataclass(frozen=True)
class Route:
    """One method on one resource path, with what API Gateway checks before calling the function."""

    api: RestApi
    resource: str
    method: str  # upper case, or ANY
    pattern: re.Pattern[str]
    function: str
    iam: bool
    required_parameters: tuple[tuple[str, str], ...] = ()  # (location, name), validated when enabled
    body_validator: Draft4Validator | None = None


def routes_from_api(api: RestApi) -> tuple[list[Route], list[str]]:
    """The routes of an OpenAPI (2 or 3) body; non-proxy integrations are returned as problems."""
    body = api.body
    default_security = body.get("security", [])
    validators = body.get("x-amazon-apigateway-request-validators", {})
    default_validator = body.get("x-amazon-apigateway-request-validator")
    routes: list[Route] = []
    problems: list[str] = []
    for resource, operations in body.get("paths", {}).items():
        for key, operation in operations.items():
            if key not in _METHODS and key != _ANY:
                continue
            method = "ANY" if key == _ANY else key.upper()
            integration = operation.get("x-amazon-apigateway-integration", {})
            target = _FUNCTION_IN_URI.search(str(integration.get("uri", "")))
            if integration.get("type") != "aws_proxy" or target is None:
                problems.append(f"{method} {resource}: only Lambda proxy integrations are served locally")
                continue
            security = operation.get("security", default_security)
            settings = validators.get(
                operation.get("x-amazon-apigateway-request-validator", default_validator), {}
            )
            routes.append(
                Route(
                    api=api,
                    resource=resource,
                    method=method,
                    pattern=_path_pattern(resource),
                    function=target.group(1),
                    iam=any("AWS_IAM" in requirement for requirement in security),
                    required_parameters=_required_parameters(operation)
                    if settings.get("validateRequestParameters")
                    else (),
                    body_validator=_body_validator(body, operation)
                    if settings.get("validateRequestBody")
                    else None,
                )
            )
    # API Gateway prefers the most specific resource: literal segments before {params} before {proxy+}.
    routes.sort(
        key=lambda route: (route.resource.count("+}"), route.resource.count("{"), -len(route.resource))
    )
    return routes, problems


def _path_pattern(resource: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(resource))
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
    return re.compile(f"^{pattern}$")


def _required_parameters(operation: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    locations = {"query": "querystring", "header": "header", "path": "path"}
    return tuple(
        (locations[item["in"]], item["name"])
        for item in operation.get("parameters", [])
        if item.get("required") and item.get("in") in locations
    )


def _body_validator(body: dict[str, Any], operation: dict[str, Any]) -> Draft4Validator | None:
    schema: dict[str, Any] | None = None
    for item in operation.get("parameters", []):
        if item.get("in") == "body":
            schema = item.get("schema")
    content = (operation.get("requestBody") or {}).get("content", {})
    if "application/json" in content:
        schema = content["application/json"].get("schema")
    if schema is None:
        return None
    root = {**schema, "definitions": body.get("definitions", {}), "components": body.get("components", {})}
    return Draft4Validator(root)


class ErrorAnswer(Exception):
    """An API Gateway error answer, raised from deep inside the request handling."""

    def __init__(self, status: int, message: str, error_type: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def _has_model(headers: Any) -> bool:
    """Whether the request's content type is the one the model is declared for (application/json).

    API Gateway validates a body only against the model of its content type: "If no matching
    content type is found, request validation is not performed" (API Gateway developer guide,
    "Request validation for REST APIs"). A request without Content-Type is validated as JSON
    (unverified: the stricter reading).
    """
    content_type = (headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
    return bool(content_type == "application/json")


def validate_request(
    route: Route,
    query: list[tuple[str, str]],
    headers: Any,
    path_parameters: dict[str, str],
    body: bytes,
) -> None:
    """Check required parameters and the JSON body as the route's request validator says; 400 if not."""
    present = {
        "querystring": {name for name, _ in query},
        "header": {name.lower() for name in headers},
        "path": set(path_parameters),
    }
    missing = [
        name
        for location, name in route.required_parameters
        if (name.lower() if location == "header" else name) not in present[location]
    ]
    if missing:
        raise ErrorAnswer(
            400, f"Missing required request parameters: [{', '.join(missing)}]", "BadRequestException"
        )
    if route.body_validator is None or not _has_model(headers):
        return
    try:
        document = json.loads(body or b"null")
    except (ValueError, RecursionError) as error:  # JSON nested deeper than the parser goes is invalid too
        raise ErrorAnswer(400, "Invalid request body", "BadRequestException") from error
    if not route.body_validator.is_valid(document):
        raise ErrorAnswer(400, "Invalid request body", "BadRequestException")
