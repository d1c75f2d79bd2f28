"""The packaged canary events meet their own expectations against the real handlers; tracing switches."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from orders import observability
from orders.logic.canary import EXPECTATIONS, load_canary_event
from tests.unit.fakes import FakeQueue, FakeRepository, FakeStorage


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_each_canary_event_gets_the_expected_answer_and_writes_nothing(
    name: str, repository: FakeRepository, queue: FakeQueue, storage: FakeStorage, lambda_context: Any
) -> None:
    handler = importlib.import_module(f"orders.handlers.{name}").handler
    payload = handler(load_canary_event(name), lambda_context)
    assert EXPECTATIONS[name][1](payload)
    assert (repository.orders, queue.sent, storage.calls) == ({}, [], [])


@pytest.mark.parametrize(
    ("environment", "enabled"),
    [
        ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
        ({}, False),
    ],
)
def test_tracing_is_on_only_inside_lambda_unless_disabled(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], enabled: bool
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert observability.tracing_enabled() is enabled


def test_a_traced_handler_is_captured_by_the_tracer_when_tracing_is_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    captured: list[str] = []

    class FakeTracer:
        def capture_lambda_handler(self, handler: Any) -> Any:
            captured.append(handler.__name__)
            return handler

        def patch(self, modules: tuple[str, ...]) -> None:
            captured.extend(modules)

    monkeypatch.setattr(observability, "tracer", FakeTracer)

    @observability.traced
    def handler(event: Any, context: Any) -> str:
        return "done"

    observability.patch_botocore()
    assert (handler({}, None), captured) == ("done", ["botocore", "handler"])


def test_the_real_tracer_is_built_once_and_never_auto_patches() -> None:
    tracer = observability.tracer()
    assert tracer is observability.tracer()
    assert tracer.auto_patch is False
