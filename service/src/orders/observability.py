"""Powertools Logger, Metrics and Tracer shared by every function.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE.

The Tracer is built at the first invocation, and only when tracing is on: constructing a
Powertools Tracer always imports the X-Ray SDK, which imports botocore (~350 ms here),
even when tracing is disabled. Tracing is off where Powertools turns it off itself:
POWERTOOLS_TRACE_DISABLED, outside Lambda (no LAMBDA_TASK_ROOT) and under `sam local`.
It never auto-patches; `dal/clients.py` patches botocore when it creates the first client.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger()
metrics = Metrics()

# The metric a canary judges a batch worker by: per-record failures that are not poison. It carries the
# executing version as a dimension, as AWS/Lambda's `ExecutedVersion` does, so the deployment alarm
# watches the new version only (docs/decisions/0020-per-version-record-failures.md).
RECORD_FAILURES = "RecordFailures"


def count_record_failure() -> None:
    """Publish one unexpected per-record failure of this function version, now (EMF on stdout)."""
    dimensions = {
        "FunctionName": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "unknown"),
        "ExecutedVersion": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    }
    # single_metric prints at once, so the datapoint survives a crash later in the invocation.
    with single_metric(name=RECORD_FAILURES, unit=MetricUnit.Count, value=1, default_dimensions=dimensions):
        pass


_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def tracing_enabled() -> bool:
    """Whether Powertools would trace in this environment (its own rules, read at call time)."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in {"1", "true", "yes", "on"}
    in_lambda = bool(os.environ.get("LAMBDA_TASK_ROOT")) and not os.environ.get("AWS_SAM_LOCAL")
    return in_lambda and not disabled


@functools.cache
def tracer() -> Tracer:
    """The process's Tracer, built on first use."""
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 - see the module docstring

    return Tracer(auto_patch=False)


def patch_botocore() -> None:
    """Trace AWS SDK calls, when tracing is on."""
    if tracing_enabled():
        tracer().patch(modules=("botocore",))


def traced(handler: _Handler) -> _Handler:
    """`tracer.capture_lambda_handler`, applied at the first invocation if tracing is on."""

    @functools.cache
    def _target() -> Callable[..., Any]:
        return tracer().capture_lambda_handler(handler) if tracing_enabled() else handler

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        return _target()(event, context)

    return wrapper  # type: ignore[return-value]
