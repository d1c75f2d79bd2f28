"""SQS worker (ProcessOrdersFunction): decide each order, once, and report partial failures.

A record fails alone (retried, then after maxReceiveCount in the DLQ). Two kinds of failure:

* poison: the body is not an order, or its order does not exist (PoisonMessageError), or a
  duplicate delivery of the same order is still in progress. Quiet: a log line, the DLQ alarm.
* anything else (AccessDenied, a throttled table, a bug): unexpected. Besides failing the
  record, it publishes `RecordFailures` with this function version as a dimension. A partial
  batch response never counts in Lambda's `Errors`, so that metric is what the worker's
  deployment alarm and the bake watch (docs/decisions/0020-per-version-record-failures.md).

The batch is processed with `raise_on_entire_batch_failure=False`: a batch of poison only is
reported through batchItemFailures, not as a function error.
Each message is idempotent on its `orderId` (Powertools idempotency, DynamoDB).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.logic.processing import process_order
from orders.models.errors import PoisonMessageError
from orders.models.message import decode_order_message, parse_message_body
from orders.models.order import OrderStatus
from orders.observability import count_record_failure, logger, metrics, traced
from orders.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

_METRICS = {OrderStatus.ACCEPTED: "OrdersAccepted", OrderStatus.REJECTED: "OrdersRejected"}


def process_message(message: dict[str, Any]) -> dict[str, Any]:
    """Decide one parsed message and write the decision; the JSON result is what idempotency stores."""
    order_id, request = decode_order_message(message)
    result = process_order(
        order_id=order_id,
        request=request,
        max_order_total=get_settings().max_order_total,
        repository=deps.order_repository(),
    )
    if result.written:
        metrics.add_metric(name=_METRICS[result.decision.status], unit=MetricUnit.Count, value=1)
    logger.info("Order decided", order_id=order_id, status=result.decision.status, written=result.written)
    return {"orderId": order_id, "status": result.decision.status.value, "reason": result.decision.reason}


@dataclass(frozen=True)
class BatchMachinery:
    """What a non-empty batch needs: built at the first record, see the note below."""

    config: IdempotencyConfig
    process: Callable[..., dict[str, Any]]
    processor: BatchProcessor
    process_partial_response: Callable[..., Any]
    # Failures that are part of normal operation: they fail the record quietly.
    expected_failures: tuple[type[Exception], ...]


@functools.cache
def batch_machinery() -> BatchMachinery:
    """`process_message` made idempotent on `orderId`, and the batch processor.

    Imported here rather than at module level: Powertools batch and idempotency cost
    ~200 ms of imports here that the empty batch of the PreTraffic canary never uses.
    """
    from aws_lambda_powertools.utilities.batch import (  # noqa: PLC0415 - see the docstring
        BatchProcessor,
        EventType,
        process_partial_response,
    )
    from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415 - see the docstring
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415
        IdempotencyAlreadyInProgressError,
    )

    config = IdempotencyConfig(
        event_key_jmespath="orderId", raise_on_no_idempotency_key=True, hash_function="sha256"
    )
    process = idempotent_function(
        data_keyword_argument="message", persistence_store=deps.idempotency_store(), config=config
    )(process_message)
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    expected = (PoisonMessageError, IdempotencyAlreadyInProgressError)
    return BatchMachinery(config, process, processor, process_partial_response, expected)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    """One SQS record: poison raises before idempotency is even consulted; the unexpected is counted."""
    machinery = batch_machinery()
    try:
        return machinery.process(message=parse_message_body(record.body))
    except machinery.expected_failures as failure:
        logger.info("Record failed", message_id=record.message_id, reason=str(failure))
        raise
    except Exception:
        count_record_failure()
        logger.exception("Record failed unexpectedly", message_id=record.message_id)
        raise


@logger.inject_lambda_context
@traced
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point; an empty batch (the PreTraffic canary) touches nothing."""
    if not event.get("Records"):
        return {"batchItemFailures": []}
    machinery = batch_machinery()
    machinery.config.register_lambda_context(context)
    response = machinery.process_partial_response(
        event=event, record_handler=record_handler, processor=machinery.processor, context=context
    )
    return dict(response)
