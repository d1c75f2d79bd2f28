"""EventBridge scheduled rules, run offline: the only traffic an environment gets besides its callers.

A SAM `Schedule` event becomes an `AWS::Events::Rule` with a `ScheduleExpression` and a Lambda
target. The `Scheduler` fires each enabled rule of the environment's current stack on the
rehearsal's compressed clock (a `rate(5 minutes)` rule every 5 pipeline minutes) and invokes each
target as EventBridge does: asynchronously (Lambda's retries: two more attempts after a function
error, throttled events kept up to six hours), on the exact ARN the target names (function,
version or alias), with EventBridge's scheduled-event document or the target's constant `Input`.
What it cannot fire as AWS would (a `cron()` expression, a non-Lambda target, an input path or
transformer) it does not fire at all and lists as not emulated: never a guess.
Rules come from the stack on every tick, so an update that adds, changes or removes a rule (or a
Condition that leaves it out of an environment) takes effect as on AWS. ADR 0040.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from rehearsal.base.aws import LAMBDA_ASYNC_ATTEMPTS
from rehearsal.base.clock import TimeScale
from rehearsal.cloud.template import Resolver, StackIdentity, TransformedTemplate, UnresolvedReferenceError
from rehearsal.runtime.invocation import InvocationResult

RULE_TYPE = "AWS::Events::Rule"
# "rate(value unit)": value a positive number; unit minute | minutes | hour | hours | day | days;
# singular for 1, plural above (EventBridge, "Rate expressions reference").
_RATE = re.compile(r"^rate\((?P<value>[1-9]\d*) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_UNIT_MINUTES = {"minute": 1, "hour": 60, "day": 24 * 60}
# Lambda keeps an asynchronous event up to six hours ("It retains events in a queue for up to six
# hours", Lambda PutFunctionEventInvokeConfig); a throttled event is retried meanwhile.
_MAX_EVENT_AGE_MINUTES = 6 * 60
# "with a one-minute wait between the first two attempts, and two minutes between the second and
# third attempts"; throttled: "The retry interval increases exponentially from 1 second after the
# first attempt to a maximum of 5 minutes" (Lambda, "How Lambda handles errors and retries with
# asynchronous invocation").
_RETRY_WAIT_MINUTES = (1.0, 2.0)
_THROTTLE_BACKOFF_MAX_SECONDS = 5 * 60.0
_TICK_SECONDS = 0.02  # how often the scheduler looks at the clock (real seconds)

Invoke = Callable[..., InvocationResult]
LogSink = Callable[[dict[str, Any]], None]


class ScheduleNotEmulatedError(ValueError):
    """A schedule the rehearsal cannot fire as EventBridge would; its message says why."""


class SchedulingStack(Protocol):
    """What the scheduler reads of `rehearsal.cloud.provision.Stack`."""

    identity: StackIdentity
    template: TransformedTemplate
    resolver: Resolver


@dataclass(frozen=True, kw_only=True)
class ScheduledTarget:
    target_id: str
    arn: str  # a Lambda function, version or alias ARN
    constant_input: str | None  # the target's `Input`: sent instead of the scheduled event


@dataclass(frozen=True, kw_only=True)
class ScheduledRule:
    logical_id: str
    name: str
    arn: str
    expression: str
    every_minutes: float  # pipeline minutes between two firings
    targets: tuple[ScheduledTarget, ...]


@dataclass(frozen=True, kw_only=True)
class UnscheduledRule:
    """A declared rule the scheduler does not fire, and why (the run's `not_emulated`)."""

    logical_id: str
    why: str


def rate_minutes(expression: str) -> float:
    """Minutes between firings of a `rate()` expression; `ScheduleNotEmulatedError` for anything else."""
    text = expression.strip()
    if text.startswith("cron("):
        raise ScheduleNotEmulatedError(
            f"{text}: cron expressions are not emulated offline (only rate()), so this rule never fires here"
        )
    match = _RATE.match(text)
    if match is None:
        raise ScheduleNotEmulatedError(f"{text}: not a valid rate expression (rate(<n> <unit>))")
    value, unit = int(match.group("value")), match.group("unit")
    if (value == 1) != (not unit.endswith("s")):
        raise ScheduleNotEmulatedError(
            f"{text}: EventBridge refuses it (the unit is singular for 1 and plural above)"
        )
    return float(value * _UNIT_MINUTES[unit.rstrip("s")])


def declared_schedules(stack: SchedulingStack) -> tuple[list[ScheduledRule], list[UnscheduledRule]]:
    """The stack's enabled scheduled rules (those its Conditions include), and those not fired offline."""
    rules: list[ScheduledRule] = []
    skipped: list[UnscheduledRule] = []
    for logical_id, resource in stack.template.resources_of_type(RULE_TYPE).items():
        if not stack.resolver.resource_included(resource):
            continue  # left out of this environment by its Condition, as CloudFormation would
        try:
            rule = _rule(stack, logical_id, stack.resolver.resolve(resource.get("Properties") or {}))
        except ScheduleNotEmulatedError as error:
            skipped.append(UnscheduledRule(logical_id=logical_id, why=str(error)))
            continue
        except UnresolvedReferenceError:
            continue  # a target without a value yet (a version not published): the next tick sees it
        if rule is not None:
            rules.append(rule)
    return rules, skipped


def _rule(stack: SchedulingStack, logical_id: str, properties: dict[str, Any]) -> ScheduledRule | None:
    expression = properties.get("ScheduleExpression")
    if not expression or properties.get("State", "ENABLED") != "ENABLED":
        return None  # an event-pattern rule, or a disabled one: nothing fires on a clock
    if properties.get("EventBusName", "default") != "default":
        raise ScheduleNotEmulatedError("a scheduled rule on a custom event bus is not emulated")
    every = rate_minutes(str(expression))
    identity = stack.identity
    name = str(properties.get("Name") or stack.resolver.placeholders.get(logical_id) or logical_id)
    return ScheduledRule(
        logical_id=logical_id,
        name=name,
        arn=f"arn:aws:events:{identity.region}:{identity.account_id}:rule/{name}",
        expression=str(expression),
        every_minutes=every,
        targets=tuple(_target(item) for item in properties.get("Targets") or ()),
    )


def _target(item: dict[str, Any]) -> ScheduledTarget:
    arn = str(item.get("Arn", ""))
    if not arn.startswith("arn:aws:lambda:") or ":function:" not in arn:
        raise ScheduleNotEmulatedError(f"target {item.get('Id')}: only Lambda targets are invoked, not {arn}")
    for unsupported in ("InputPath", "InputTransformer", "RoleArn", "DeadLetterConfig"):
        if unsupported in item:
            raise ScheduleNotEmulatedError(f"target {item.get('Id')}: {unsupported} is not emulated")
    given = item.get("Input")
    return ScheduledTarget(
        target_id=str(item.get("Id", "")),
        arn=arn,
        constant_input=None if given is None else str(given),
    )


def scheduled_event(rule: ScheduledRule, *, region: str, account_id: str, at: datetime) -> dict[str, Any]:
    """The document EventBridge sends a target for a scheduled rule (its "Scheduled Event" shape)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule.arn],
        "detail": {},
    }


@dataclass(kw_only=True)
class _Event:
    """One scheduled event in the local stand-in for Lambda's asynchronous event queue."""

    rule: ScheduledRule
    target: ScheduledTarget
    document: Any
    queued: float  # monotonic time it was queued
    not_before: float
    errors: int = 0
    throttles: int = 0


def _always() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


class Scheduler(threading.Thread):
    """Fires the scheduled rules of `stack()` on `time_scale`'s clock until `stopping` is set.

    A rule's first firing comes one interval after the scheduler first sees it ("A rate expression
    starts when you create the scheduled event rule"); a changed expression starts anew. Each firing
    queues one event per target, as Lambda queues an asynchronous invocation; one at a time runs per
    target, the others wait in the queue until Lambda's maximum event age. On AWS a job shorter than
    its interval never overlaps itself; offline, time compression makes every job longer than its
    interval, and overlapping copies would only pile up work this machine cannot do (and duplicate
    what the job sends). Lambda may run them side by side: listed in docs/rehearsal-fidelity.md.
    """

    IN_FLIGHT_PER_TARGET = 1

    def __init__(
        self,
        *,
        stack: Callable[[], SchedulingStack],
        invoke: Invoke,
        time_scale: TimeScale,
        stopping: threading.Event,
        log_sink: LogSink,
        clock: Callable[[], float] = time.monotonic,
        firing: threading.Event | None = None,
    ) -> None:
        super().__init__(name="eventbridge-schedules", daemon=True)
        self.clock = clock
        self.stack = stack
        self.invoke = invoke
        self.time_scale = time_scale
        self.stopping = stopping
        self.log_sink = log_sink
        # Cleared: no rule fires and no queued event runs (`LocalEnvironment.watching`); a rule whose
        # time came meanwhile fires as soon as it is set again.
        self.firing = firing or _always()
        self.next_firing: dict[tuple[str, str], float] = {}  # (logical id, expression) -> monotonic time
        self.firings: dict[str, int] = {}  # per rule logical id
        self.ran: dict[str, float] = {}  # rule logical id -> wall clock its last attempt ended
        self._lock = threading.Lock()
        self._queue: list[_Event] = []
        self._in_flight: dict[str, int] = {}  # per target ARN

    def run(self) -> None:
        while not self.stopping.wait(_TICK_SECONDS):
            try:
                self.tick(self.clock())
            except Exception as error:  # a broken rule must not stop the others; EventBridge's do not
                self.log_sink({"type": "scheduler-error", "error": repr(error)})

    def tick(self, now: float) -> None:
        """Fire every rule whose time has come (once per tick: no burst after a stall), then dispatch."""
        if not self.firing.is_set():
            return
        stack = self.stack()
        rules, _ = declared_schedules(stack)
        seen = set()
        for rule in rules:
            key = (rule.logical_id, rule.expression)
            seen.add(key)
            interval = self.time_scale.real_seconds_for_minutes(rule.every_minutes)
            due = self.next_firing.setdefault(key, now + interval)
            if now < due:
                continue
            self.next_firing[key] = max(due + interval, now)
            self.firings[rule.logical_id] = self.firings.get(rule.logical_id, 0) + 1
            for target in rule.targets:
                document = self._document(rule, target, stack.identity)
                with self._lock:
                    self._queue.append(
                        _Event(rule=rule, target=target, document=document, queued=now, not_before=now)
                    )
        for key in set(self.next_firing) - seen:  # a rule deleted by an update stops firing
            del self.next_firing[key]
        self._dispatch(now)

    @staticmethod
    def _document(rule: ScheduledRule, target: ScheduledTarget, identity: StackIdentity) -> Any:
        if target.constant_input is not None:
            return json.loads(target.constant_input)
        at = datetime.now(UTC)
        return scheduled_event(rule, region=identity.region, account_id=identity.account_id, at=at)

    def _dispatch(self, now: float) -> None:
        max_age = self.time_scale.real_seconds_for_minutes(_MAX_EVENT_AGE_MINUTES)
        starting: list[_Event] = []
        with self._lock:
            for event in list(self._queue):
                arn = event.target.arn
                if now - event.queued >= max_age:
                    self._queue.remove(event)
                    self._dropped(event, "older than the maximum event age")
                elif event.not_before <= now and self._in_flight.get(arn, 0) < self.IN_FLIGHT_PER_TARGET:
                    self._queue.remove(event)
                    self._in_flight[arn] = self._in_flight.get(arn, 0) + 1
                    starting.append(event)
        for event in starting:
            name = f"schedule-{event.rule.logical_id}"
            threading.Thread(target=self._deliver, args=(event,), name=name, daemon=True).start()

    def _deliver(self, event: _Event) -> None:
        """One attempt; Lambda's asynchronous rules decide whether the event goes back to the queue."""
        try:
            result = self.invoke(event.target.arn, event.document)
        finally:
            with self._lock:
                self._in_flight[event.target.arn] -= 1
                self.ran[event.rule.logical_id] = time.time()
        if self.stopping.is_set() or not (result.throttled or result.failed):
            return
        now = self.clock()
        if result.throttled:
            # "The retry interval increases exponentially from 1 second after the first attempt to a
            # maximum of 5 minutes" (ADR 0040), in pipeline time.
            event.throttles += 1
            wait_seconds = min(2.0 ** (event.throttles - 1), _THROTTLE_BACKOFF_MAX_SECONDS)
            event.not_before = now + self.time_scale.real_seconds(wait_seconds)
        else:
            event.errors += 1
            if event.errors >= LAMBDA_ASYNC_ATTEMPTS:
                self._dropped(event, f"failed {event.errors} attempts")
                return
            wait = _RETRY_WAIT_MINUTES[event.errors - 1]
            event.not_before = now + self.time_scale.real_seconds_for_minutes(wait)
        with self._lock:
            self._queue.append(event)

    def _dropped(self, event: _Event, why: str) -> None:
        self.log_sink(
            {"type": "event-dropped", "rule": event.rule.logical_id, "target": event.target.arn, "why": why}
        )

    def pending(self) -> int:
        """Events waiting in the queue (not yet run, or waiting for a retry)."""
        with self._lock:
            return len(self._queue)
