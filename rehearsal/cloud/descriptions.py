"""What provisioning hands the local Lambda runtime: functions, event sources and APIs as described.

Functions, APIs and event sources are not created in the local cloud but described here, so that
the runtime (workers, pollers, gateway) depends on these records rather than on provisioning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FunctionSpec:
    """A function as the template describes it, before its environment is resolved."""

    logical_id: str
    name: str
    handler: str
    code: Path
    timeout: float
    memory_mb: int
    runtime: str
    environment: dict[str, Any]
    version_logical_id: str | None
    alias_logical_id: str | None
    alias_name: str | None
    layers: tuple[str, ...] = ()  # as written: a layer version ARN or an SSM dynamic reference
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions
    role: str | None = None  # the execution role's ARN, whose session the function's calls sign with


@dataclass(frozen=True)
class QueueSource:
    """An SQS event source mapping: which queue feeds which function, and how."""

    logical_id: str
    function: str  # name, or ARN with a qualifier (the alias)
    queue_url: str
    queue_arn: str
    batch_size: int
    batching_window: float
    report_batch_item_failures: bool
    visibility_timeout: float
    maximum_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency


@dataclass(frozen=True)
class BucketSource:
    """S3 notifications of a bucket delivered to a function through an internal queue of the local cloud."""

    bucket: str
    function: str
    queue_url: str
    events: tuple[str, ...]


@dataclass(frozen=True)
class RestApi:
    logical_id: str
    name: str
    stage: str
    body: dict[str, Any]
