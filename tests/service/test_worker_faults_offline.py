"""A worker release that fails every order trips its deployment alarm offline, as it would on AWS.

The fault: the idempotency table the worker writes through is gone (as with AccessDenied, a
deleted table or a bug), so every record fails while the invocation still succeeds with a
partial batch response, which Lambda's `Errors` never counts.
"""

from __future__ import annotations

from tests.rehearsal.polling import wait_for
from tests.service.conftest import Service

DEADLINE_SECONDS = 60
# Logical ids; the evaluator names alarms as CloudWatch does (the stack's physical names).
RECORD_FAILURES_ALARM = "ProcessOrdersRecordFailuresAlarm"
ERRORS_ALARM = "ProcessOrdersErrorsAlarm"


def _order() -> dict[str, object]:
    return {
        "customerId": "c-1",
        "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": 5}],
    }


def test_a_worker_that_cannot_write_trips_its_record_failure_alarm_but_not_errors(service: Service) -> None:
    dynamodb = service.client("dynamodb")
    idempotency = service.environment.stack.resolver.refs["IdempotencyTable"]
    dynamodb.delete_table(TableName=idempotency)
    evaluator, alarms = service.environment.alarm_evaluator()
    record_failures, errors = (
        service.environment.stack.resolver.refs[name] for name in (RECORD_FAILURES_ALARM, ERRORS_ALARM)
    )
    assert not [problem for problem in alarms.problems if "ProcessOrders" in problem], alarms.problems

    response = service.submit(_order())
    assert response.status_code == 202, response.text

    def fired() -> bool:
        evaluator.evaluate()
        return record_failures in evaluator.in_alarm()

    wait_for(fired, timeout=DEADLINE_SECONDS, what=f"{record_failures} in ALARM")
    assert evaluator.states[errors] != "ALARM"
