"""EventBridge scheduled rules offline: only what a template declares runs, on the compressed clock,
invoked as EventBridge invokes Lambda (asynchronously, on the ARN the target names, its event shape)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rehearsal.base.clock import TimeScale
from rehearsal.cloud.template import (
    Resolver,
    StackIdentity,
    TransformedTemplate,
    load_template,
    transform_template,
)
from rehearsal.runtime.environment import LocalEnvironment, start_environment
from rehearsal.runtime.invocation import InvocationResult
from rehearsal.runtime.schedules import (
    ScheduleNotEmulatedError,
    Scheduler,
    declared_schedules,
    rate_minutes,
)
from tests.rehearsal.conftest import FIXTURE_APP, FIXTURE_CODE
from tests.rehearsal.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
IDENTITY = StackIdentity(stack_name="orders-staging", region="us-east-1", account_id="123456789012")
SCALE = TimeScale(seconds_per_minute=0.25)


class _Stack:
    """A transformed template with the names provisioning would give its functions, aliases and rules."""

    def __init__(self, document: dict[str, Any], parameters: dict[str, str] | None = None) -> None:
        self.identity = IDENTITY
        self.template: TransformedTemplate = transform_template(
            document, identity=IDENTITY, parameters=parameters or {}, base_dir=REPO / "service"
        )
        self.resolver = Resolver.for_template(self.template)
        for logical_id, resource in self.template.resources.items():
            name = f"{IDENTITY.stack_name}-{logical_id}"
            arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
            if resource["Type"] == "AWS::Lambda::Function":
                self.resolver.refs[logical_id] = name
                self.resolver.attributes[(logical_id, "Arn")] = arn
            elif resource["Type"] == "AWS::Events::Rule":
                self.resolver.placeholders[logical_id] = name


def _function(schedule: str, **extra: Any) -> dict[str, Any]:
    event = {"Type": "Schedule", "Properties": {"Schedule": schedule, **extra}}
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Runtime": "python3.13",
            "Handler": "fixture_app.api.echo",
            "CodeUri": "s3://bucket/key",
            "Events": {"Tick": event},
        },
    }


def _document(**functions: dict[str, Any]) -> dict[str, Any]:
    return {"Transform": "AWS::Serverless-2016-10-31", "Resources": functions}


# ---------------------------------------------------------------- expressions and declarations


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [("rate(1 minute)", 1), ("rate(5 minutes)", 5), ("rate(2 hours)", 120), ("rate(1 day)", 1440)],
)
def test_rate_expressions_are_read_as_eventbridge_reads_them(expression: str, minutes: float) -> None:
    assert rate_minutes(expression) == minutes


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("rate(1 minutes)", "singular for 1"),
        ("rate(5 minute)", "singular for 1"),
        ("rate(0 minutes)", "not a valid rate"),
        ("rate(1 second)", "not a valid rate"),
        ("cron(0 12 * * ? *)", "cron expressions are not emulated"),
    ],
)
def test_an_expression_the_scheduler_cannot_fire_as_eventbridge_would_is_refused(
    expression: str, why: str
) -> None:
    with pytest.raises(ScheduleNotEmulatedError, match=why):
        rate_minutes(expression)


def test_staging_declares_its_traffic_source_schedule_and_production_does_not() -> None:
    document = load_template(REPO / "service" / "template.yaml")
    staging, _ = declared_schedules(_Stack(document, {"Environment": "staging"}))
    production, _ = declared_schedules(_Stack(document, {"Environment": "production"}))
    assert {rule.logical_id for rule in staging} == {
        "StagingTrafficFunctionEveryMinute",
        "SweepUnsentOrdersFunctionEveryMinute",
    }
    assert {rule.logical_id for rule in production} == {"SweepUnsentOrdersFunctionEveryMinute"}
    traffic = next(rule for rule in staging if rule.logical_id.startswith("StagingTraffic"))
    assert traffic.every_minutes == 1
    assert [target.arn for target in traffic.targets] == [
        "arn:aws:lambda:us-east-1:123456789012:function:orders-staging-StagingTrafficFunction"
    ]


def test_a_cron_rule_never_fires_and_says_why() -> None:
    stack = _Stack(_document(Nightly=_function("cron(0 3 * * ? *)")))
    rules, skipped = declared_schedules(stack)
    assert rules == []
    assert [(item.logical_id, "cron expressions are not emulated" in item.why) for item in skipped] == [
        ("NightlyTick", True)
    ]


def test_a_disabled_rule_does_not_fire() -> None:
    stack = _Stack(_document(Off=_function("rate(1 minute)", Enabled=False)))
    assert declared_schedules(stack) == ([], [])


# ---------------------------------------------------------------- the scheduler's clock


class _Recorder:
    """Stands in for `LocalFunctions.invoke`: records each call; fails the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.failures = failures
        self.lock = threading.Lock()

    def __call__(self, target: str, event: Any) -> InvocationResult:
        with self.lock:
            self.calls.append((target, event))
            failed = len(self.calls) <= self.failures
        result = InvocationResult(function_name=target, executed_version="1", request_id="r")
        result.error = {"errorType": "Boom"} if failed else None
        return result


class _Clock:
    """The scheduler's clock, moved by the test: each `tick(at)` happens at `at`."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _scheduler(stack: _Stack, invoke: _Recorder) -> tuple[Scheduler, threading.Event, _Clock]:
    stopping, clock = threading.Event(), _Clock()
    scheduler = Scheduler(
        stack=lambda: stack,
        invoke=invoke,
        time_scale=SCALE,
        stopping=stopping,
        log_sink=lambda _r: None,
        clock=clock,
    )
    return scheduler, stopping, clock


def _tick(scheduler: Scheduler, clock: _Clock, at: float) -> None:
    clock.now = at
    scheduler.tick(at)


def test_a_rate_rule_fires_once_per_compressed_interval_starting_one_interval_after_it_appears() -> None:
    invoke = _Recorder()
    scheduler, stopping, clock = _scheduler(_Stack(_document(Every=_function("rate(2 minutes)"))), invoke)
    interval = SCALE.real_seconds_for_minutes(2)  # 0.5 s
    try:
        for step in range(41):  # 0 .. 2.0 s in 50 ms ticks
            _tick(scheduler, clock, 100.0 + step * 0.05)
        assert scheduler.firings == {"EveryTick": 4}  # at 0.5, 1.0, 1.5 and 2.0 s
        assert interval == 0.5
        wait_for(lambda: len(invoke.calls) == 4, what="four asynchronous invocations")
    finally:
        stopping.set()
    target, event = invoke.calls[0]
    assert target == "arn:aws:lambda:us-east-1:123456789012:function:orders-staging-Every"
    shape = ("version", "detail-type", "source", "account", "region", "detail")
    assert {key: event[key] for key in shape} == {
        "version": "0",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "region": "us-east-1",
        "detail": {},
    }
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/orders-staging-EveryTick"]


def test_a_target_with_a_constant_input_gets_that_input_instead_of_the_event() -> None:
    invoke = _Recorder()
    function = _function("rate(1 minute)", Input='{"raw": true}')
    scheduler, stopping, clock = _scheduler(_Stack(_document(Given=function)), invoke)
    try:
        _tick(scheduler, clock, 0.0)
        _tick(scheduler, clock, SCALE.seconds_per_minute)
        wait_for(lambda: invoke.calls, what="the invocation")
    finally:
        stopping.set()
    assert invoke.calls[0][1] == {"raw": True}


def test_a_failing_invocation_is_retried_twice_as_lambda_retries_asynchronous_events() -> None:
    invoke = _Recorder(failures=5)
    scheduler, stopping, clock = _scheduler(_Stack(_document(Flaky=_function("rate(1 day)"))), invoke)
    try:
        _tick(scheduler, clock, 0.0)
        fired = SCALE.real_seconds_for_minutes(24 * 60)
        _tick(scheduler, clock, fired)
        wait_for(lambda: scheduler.pending() == 1, what="the first attempt to fail")
        # The retries wait 1, then 2 pipeline minutes: a tick before that runs nothing.
        _tick(scheduler, clock, fired + SCALE.real_seconds_for_minutes(0.5))
        assert len(invoke.calls) == 1
        _tick(scheduler, clock, fired + SCALE.real_seconds_for_minutes(1.1))
        wait_for(lambda: len(invoke.calls) == 2 and scheduler.pending() == 1, what="the first retry")
        retried = clock.now
        _tick(scheduler, clock, retried + SCALE.real_seconds_for_minutes(1.5))
        assert len(invoke.calls) == 2
        _tick(scheduler, clock, retried + SCALE.real_seconds_for_minutes(2.1))
        wait_for(lambda: len(invoke.calls) == 3 and scheduler.pending() == 0, what="the second retry")
        _tick(scheduler, clock, retried + SCALE.real_seconds_for_minutes(60))
    finally:
        stopping.set()
    assert len(invoke.calls) == 3  # the event is dropped after its third failed attempt


# ---------------------------------------------------------------- in a running environment


def _scheduler_in(environment: LocalEnvironment) -> Scheduler:
    assert environment.scheduler is not None
    return environment.scheduler


@pytest.fixture
def scheduled_app(tmp_path: Path) -> Path:
    """A one-function app whose function a `rate(1 minute)` rule invokes through its `live` alias."""
    shutil.copytree(FIXTURE_CODE, tmp_path / "src")
    (tmp_path / "template.yaml").write_text(
        """Transform: AWS::Serverless-2016-10-31
Resources:
  TickFunction:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.13
      CodeUri: src/
      Handler: fixture_app.api.echo
      AutoPublishAlias: live
      Events:
        EveryMinute:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
""",
        encoding="utf-8",
    )
    return tmp_path / "template.yaml"


def test_a_declared_rate_rule_runs_its_function_at_the_compressed_rate(scheduled_app: Path) -> None:
    records: list[dict[str, Any]] = []
    environment = start_environment(
        template_path=scheduled_app, environment="staging", time_scale=SCALE, log_sink=records.append
    )
    try:
        started = time.monotonic()
        wait_for(lambda: _scheduler_in(environment).firings.get("TickFunctionEveryMinute", 0) >= 6)
        elapsed = time.monotonic() - started
        invoked = wait_for(
            lambda: [r for r in records if r.get("type") == "invocation" and r.get("status") == "ok"],
            what="a scheduled invocation",
        )
    finally:
        environment.stop()
    # Never faster than one firing per pipeline minute (0.25 s), the first one interval after start.
    assert elapsed >= 6 * SCALE.seconds_per_minute * 0.95
    assert elapsed < 6 * SCALE.seconds_per_minute * 4  # and not starved on a busy machine either
    assert {(r["function"], r["qualifier"]) for r in invoked} == {("rehearsal-staging-TickFunction", "live")}


def test_a_releases_environment_fires_its_rules_only_while_watched_and_says_so(scheduled_app: Path) -> None:
    environment = start_environment(
        template_path=scheduled_app, environment="staging", time_scale=SCALE, schedules_while_watched=True
    )
    try:
        scheduler = _scheduler_in(environment)
        started = time.monotonic()
        # Four pipeline minutes between two actions of a release: an always-on rule would fire four times.
        wait_for(lambda: time.monotonic() - started >= 4 * SCALE.seconds_per_minute)
        assert scheduler.firings == {}
        with environment.watching():
            wait_for(lambda: scheduler.firings.get("TickFunctionEveryMinute", 0) >= 2, what="two firings")
        time.sleep(0.1)  # a tick that began before the watch ended
        fired = scheduler.firings["TickFunctionEveryMinute"]
        after = time.monotonic()
        wait_for(lambda: time.monotonic() - after >= 4 * SCALE.seconds_per_minute)
        assert scheduler.firings["TickFunctionEveryMinute"] == fired
        facts = [fact for fact in environment.not_emulated if fact[1] == "TickFunctionEveryMinute"]
        assert len(facts) == 1 and "only while the release deploys, tests or bakes" in facts[0][2]
    finally:
        environment.stop()


def test_a_template_without_a_schedule_gets_no_invocation_at_all() -> None:
    environment = start_environment(
        template_path=FIXTURE_APP / "template.yaml", environment="staging", time_scale=SCALE
    )
    started = time.monotonic()
    try:
        scheduler = _scheduler_in(environment)
        # Eight pipeline minutes: a rate(1 minute) rule would have fired eight times by now.
        wait_for(lambda: time.monotonic() - started >= 8 * SCALE.seconds_per_minute)
        assert scheduler.is_alive() and scheduler.firings == {}
        invocations = [point for point in environment.metrics.datapoints() if point.key.name == "Invocations"]
        assert invocations == []
    finally:
        environment.stop()
