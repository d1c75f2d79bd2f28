"""SQS worker (ProcessOrdersFunction): decide each order, once, and report partial failures.

A record fails alone (and, after maxReceiveCount, lands in the DLQ) when its body is not
an order (PoisonMessageError) or its order does not exist. The batch is processed with
`raise_on_entire_batch_failure=False`: a batch of poison only is reported through
batchItemFailures, not as a function error, so poison shows in the DLQ alarm and never
rolls back a good release through the canary's error alarm.
Each message is idempotent on its `orderId` (Powertools idempotency, DynamoDB).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.dal.idempotency import persistence_layer
from orders.handlers import deps
from orders.logic.processing import process_order
from orders.models.message import decode_order_message, parse_message_body
from orders.models.order import OrderStatus
from orders.observability import logger, metrics, traced
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

    config = IdempotencyConfig(
        event_key_jmespath="orderId", raise_on_no_idempotency_key=True, hash_function="sha256"
    )
    store = persistence_layer(table_name=get_settings().require("idempotency_table_name"))
    process = idempotent_function(data_keyword_argument="message", persistence_store=store, config=config)(
        process_message
    )
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return BatchMachinery(config, process, processor, process_partial_response)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    """One SQS record: poison raises before idempotency is even consulted."""
    message = parse_message_body(record.body)
    return batch_machinery().process(message=message)


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
