"""The PreTraffic checks: invoke each new version with a harmless event and judge the answer.

The events live in the package (`orders/canary_events/<name>.json`) so they ship in the zip.
Each one exercises init and the handler without side effects: an invalid order (4xx,
nothing written), an unknown order id (404), an empty SQS batch, an SQS batch holding an
`s3:TestEvent`, a scheduled event (the sweeper's only effect is its job: sending unsent orders).
`<name>` is the handler module name (submit, status, presign, worker, attach, sweeper) or the
function's logical id in the template (SubmitOrderFunction, ...), see LOGICAL_IDS.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

from orders.logic.ports import FunctionInvoker


def _status_code(payload: Any) -> int | None:
    status = payload.get("statusCode") if isinstance(payload, dict) else None
    return status if isinstance(status, int) else None


def _is_client_error(payload: Any) -> bool:
    return 400 <= (_status_code(payload) or 0) < 500


def _is_not_found(payload: Any) -> bool:
    return _status_code(payload) == 404


def _is_sweep_result(payload: Any) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get("resent"), int)


def _is_empty_batch_response(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("batchItemFailures") == [] and len(payload) == 1


EXPECTATIONS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "submit": ("a 4xx answer", _is_client_error),
    "status": ("a 404 answer", _is_not_found),
    "presign": ("a 404 answer", _is_not_found),
    "worker": ('{"batchItemFailures": []}', _is_empty_batch_response),
    "attach": ('{"batchItemFailures": []}', _is_empty_batch_response),
    "sweeper": ('{"resent": <count>, ...}', _is_sweep_result),
}


# The template's logical ids (docs/architecture.md) for the handler modules.
LOGICAL_IDS: dict[str, str] = {
    "SubmitOrderFunction": "submit",
    "GetOrderFunction": "status",
    "PresignAttachmentFunction": "presign",
    "ProcessOrdersFunction": "worker",
    "RecordAttachmentFunction": "attach",
    "SweepUnsentOrdersFunction": "sweeper",
}


def parse_versions_under_test(raw: str) -> dict[str, str]:
    """`name=arn,name=arn` as a dict; ValueError naming the bad entry."""
    versions: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        name, separator, arn = entry.partition("=")
        if not separator or not name.strip() or not arn.strip():
            raise ValueError(f"VERSIONS_UNDER_TEST entry {entry!r} is not name=<version ARN>")
        versions[name.strip()] = arn.strip()
    if not versions:
        raise ValueError("VERSIONS_UNDER_TEST is empty: list name=<version ARN> pairs")
    return versions


def load_canary_event(name: str) -> dict[str, Any]:
    """The synthetic event for function `name`, read from inside the package."""
    text = resources.files("orders.canary_events").joinpath(f"{name}.json").read_text(encoding="utf-8")
    event: dict[str, Any] = json.loads(text)
    return event


def check_version(*, name: str, function_arn: str, invoker: FunctionInvoker) -> str | None:
    """None when the version behaves, else one line saying what went wrong."""
    name = LOGICAL_IDS.get(name, name)
    if name not in EXPECTATIONS:
        return f"{name}: no canary event (known: {', '.join(EXPECTATIONS)})"
    expected, is_expected = EXPECTATIONS[name]
    try:
        result = invoker.invoke(function_arn=function_arn, event=load_canary_event(name))
    except Exception as error:  # any failure to invoke fails the hook, it must never crash it
        return f"{name}: invoking {function_arn} failed: {error}"
    if result.function_error:
        return f"{name}: {function_arn} raised {result.function_error}: {result.payload}"
    if not is_expected(result.payload):
        return f"{name}: expected {expected}, got {result.payload!r}"
    return None


def check_versions(*, versions: dict[str, str], invoker: FunctionInvoker) -> list[str]:
    """Every problem found across the versions under test (empty when all pass), in their order.

    The versions are invoked side by side: the hook lasts about one cold start, not one per version.
    """
    if not versions:
        return []
    with ThreadPoolExecutor(max_workers=len(versions)) as pool:
        problems = pool.map(
            lambda item: check_version(name=item[0], function_arn=item[1], invoker=invoker), versions.items()
        )
        return [problem for problem in problems if problem is not None]
