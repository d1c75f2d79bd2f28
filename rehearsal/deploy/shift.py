"""CodeDeploy's traffic shift, run offline: aliases move step by step while the alarms are watched.

Split from the deployer so that the shift's clock, its hold for canary traffic and its alarm
checks read in one place; `LocalDeployer` runs the hooks around it and rolls back on failure.
The shift sends no request of its own: the environment's declared traffic (its scheduled rules,
`rehearsal.runtime.schedules`) is all the new versions get, and the outcome says for every watched
alarm whether it judged them with data or without.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from rehearsal.alarms.evaluator import AlarmEvaluator, AlarmEvidence
from rehearsal.alarms.metrics import MetricKey, dimensions
from rehearsal.base.clock import TimeScale
from rehearsal.deploy.groups import DeploymentGroup, deployment_groups
from rehearsal.deploy.traffic import traffic_steps, weight_at
from rehearsal.release.deploy_port import DeployRequest, Outcome
from rehearsal.runtime.environment import LocalEnvironment
from rehearsal.runtime.schedules import declared_schedules

POLL_SECONDS = 0.05  # seconds between alarm evaluations while a shift or a bake is watched
# A compressed canary step lasts seconds: on a busy machine the declared traffic could bring the new
# version no request in it, and alarms that treat missing data as OK would pass it. When the
# environment has traffic at all, the shift holds a step until each new version has served this many
# invocations (at most _HOLD_LIMIT real seconds in all: a new version's cold start on a machine
# running several releases at once can take tens of seconds), and says so. Without any traffic
# (production offline) nothing would arrive: the shift does not wait, and its alarms report that
# they judged without data.
MIN_STEP_INVOCATIONS = 2
_HOLD_LIMIT = 60.0


def poll(check: Callable[[], Outcome | None], interval: float = POLL_SECONDS) -> Outcome:
    """Run `check` every `interval` seconds until it returns an outcome: the one watch loop of the
    deployer (a shift ends at 100 % or on ALARM, a bake at its deadline or on ALARM)."""
    while True:
        outcome = check()
        if outcome is not None:
            return outcome
        time.sleep(interval)


def watch_shift(
    request: DeployRequest,
    local: LocalEnvironment,
    shifting: list[DeploymentGroup],
    before: dict[tuple[str, str], dict[str, float]],
    new_versions: dict[str, str],
) -> Outcome:
    """Move the aliases along their deployment configurations' steps; stop at the first ALARM.

    The outcome carries, per watched alarm, whether it judged the new versions with data.
    """
    await_declared_traffic(local, request.log)
    shift = _Shift(request.log, local, shifting, before, new_versions)
    outcome = poll(shift.step)
    evidence = shift.evaluator.evidence(shift.watched, environment=local.name, watched="canary")
    log_evidence(evidence, request.log)
    return dataclasses.replace(outcome, alarm_evidence=evidence)


def await_declared_traffic(local: LocalEnvironment, log: TextIO) -> None:
    """Before a shift: let the environment's declared traffic start, so that a step is not judged
    before any call could reach it. Its scheduled rules fire from the deployment's watch on
    (ADR 0062) and their targets may still be starting: a cold start takes seconds on a busy
    machine. Waits until a call through a deployment group's alias starts, or every scheduled rule
    has run once without one (its jobs send no such traffic: production offline), at most
    _HOLD_LIMIT real seconds."""
    since = time.time()
    rules = [rule.logical_id for rule in declared_schedules(local.stack)[0]]
    ran = local.scheduler.ran if local.scheduler is not None else {}
    groups = deployment_groups(local.stack)

    def started() -> Outcome | None:
        if _has_traffic(local, groups, since) or all(ran.get(rule, 0.0) >= since for rule in rules):
            return Outcome.passed("declared traffic started")
        if time.time() - since >= _HOLD_LIMIT:
            return Outcome.failed("declared traffic not started")
        return None

    outcome = poll(started)
    waited = time.time() - since
    if not outcome.succeeded:
        log.write(f"Declared traffic still not started after {waited:.0f} s: shifting anyway\n")
    elif waited >= 1:
        log.write(f"Waited {waited:.1f} s for the declared traffic to start\n")


def log_evidence(evidence: tuple[AlarmEvidence, ...], log: TextIO) -> None:
    """One line per alarm: with data, or without (then TreatMissingData alone decided it)."""
    without = sum(1 for item in evidence if not item.with_data)
    log.write(f"Alarms judged with data: {len(evidence) - without} of {len(evidence)}\n")
    for item in evidence:
        log.write(f"  {item.describe()}\n")


class _Shift:
    """One traffic shift in progress: the weights applied so far, its clock and its alarms."""

    def __init__(
        self,
        log: TextIO,
        local: LocalEnvironment,
        shifting: list[DeploymentGroup],
        before: dict[tuple[str, str], dict[str, float]],
        new_versions: dict[str, str],
    ) -> None:
        self.log, self.local, self.shifting = log, local, shifting
        self.before, self.new_versions = before, new_versions
        self.evaluator, alarms = local.alarm_evaluator()
        for problem in alarms.problems:
            log.write(f"Alarm not evaluated offline: {problem}\n")
        self.groups = deployment_groups(local.stack)  # every group's alias: read once, polled at 20 Hz
        self.watched = list(dict.fromkeys(name for g in shifting for name in g.alarms))  # groups' order
        self.steps = {g: traffic_steps(g.config_name) for g in shifting}
        self.length = max((s[-1][0] for s in self.steps.values()), default=0.0)
        self.configs = ", ".join(sorted({g.config_name for g in shifting})) or "no alias to shift"
        log.write(
            f"Shifting {len(shifting)} aliases ({self.configs}): {self.length:g} pipeline minutes = "
            f"{local.time_scale.real_seconds_for_minutes(self.length):.1f} s; "
            f"watching {len(self.watched)} alarms\n"
        )
        self.started = time.monotonic()
        self.started_at = time.time()  # wall clock, as the metrics are stamped
        self.clock = ShiftClock(local.time_scale)
        self.applied: dict[DeploymentGroup, float] = {}

    def step(self) -> Outcome | None:
        """Judge the alarms on the step so far, then apply the weights due now (holding for canary traffic).

        Judging first means a version whose alarm fires as its step ends never gets the next step's
        weight: the evidence of one step decides whether the next one starts.
        """
        minute = self._minute()
        log_alarm_changes(self.evaluator, self.log)
        in_alarm = set(self.evaluator.in_alarm())
        firing = [name for name in self.watched if name in in_alarm]
        if firing:
            elapsed = time.monotonic() - self.started
            self.log.write(f"Rolling back: {firing[0]} is in ALARM after {elapsed:.1f} s\n")
            return Outcome.failed(
                f"rolled back: alarm {firing[0]} went to ALARM during the traffic shift "
                f"(at {minute:.1f} of {self.length:g} pipeline minutes)",
                alarm=firing[0],
            )
        self._apply(minute)
        if minute >= self.length:
            self.log.write(f"  {minute:5.2f} min: all aliases at 100% on the new versions\n")
            return Outcome.passed(f"traffic shifted ({self.configs}), alarms OK")
        return None

    def _minute(self) -> float:
        clock, applied = self.clock, self.applied
        minute = clock.minute()
        advancing = any(
            group in applied and weight_at(group_steps, minute) != applied[group]
            for group, group_steps in self.steps.items()
        )
        if (
            advancing
            and clock.held < _HOLD_LIMIT
            and _has_traffic(self.local, self.groups, self.started_at)
            and _starved(self.local, self.shifting, self.new_versions, clock)
        ):
            minute = clock.hold()
        clock.polled = time.monotonic()
        if advancing and any(weight_at(s, minute) != applied[g] for g, s in self.steps.items()):
            clock.next_step(self.log)
        return minute

    def _apply(self, minute: float) -> None:
        for group, group_steps in self.steps.items():
            weight = weight_at(group_steps, minute)
            if self.applied.get(group) != weight:
                old = serving_version(self.before[(group.function, group.alias)])
                new = self.new_versions[group.function]
                routing = {new: 1.0} if weight >= 1 else {old: 1 - weight, new: weight}
                self.local.functions.set_alias(group.function, group.alias, routing)
                if weight < 1 and weight not in self.applied.values():
                    self.log.write(f"  {minute:5.2f} min: new versions get {weight:.0%} of traffic\n")
                self.applied[group] = weight


class ShiftClock:
    """Pipeline minutes into a shift, less the real time held waiting for canary traffic."""

    def __init__(self, time_scale: TimeScale) -> None:
        self.time_scale = time_scale
        self.started = self.polled = time.monotonic()
        self.held = 0.0
        self.step_started = time.time()  # wall clock, as the metrics are stamped

    def minute(self) -> float:
        return self.time_scale.pipeline_minutes(time.monotonic() - self.started - self.held)

    def hold(self) -> float:
        """Stop the clock since the last poll; the minute it stays at."""
        self.held += time.monotonic() - self.polled
        return self.minute()

    def next_step(self, log: TextIO) -> None:
        self.step_started = time.time()
        if self.held:
            log.write(f"  held the shift {self.held:.1f} s in all until canary traffic arrived\n")
        if self.held >= _HOLD_LIMIT:
            log.write(f"  canary traffic still short after {_HOLD_LIMIT:g} s: shifting on\n")


def _has_traffic(local: LocalEnvironment, groups: list[DeploymentGroup], since: float) -> bool:
    """Whether a call through any deployment group's alias started since `since`: the environment has
    traffic to wait for. Any group's, not only the shifting ones: a worker gets its batches from the
    queue the API's callers fill. A call still in a new version's cold start counts (no metric yet)."""
    for group in groups:
        called = local.functions.last_called(group.function, group.alias)
        if called is not None and called >= since:
            return True
    return False


def _starved(
    local: LocalEnvironment,
    shifting: list[DeploymentGroup],
    new_versions: Mapping[str, str],
    clock: ShiftClock,
) -> list[str]:
    """Functions whose new version served under MIN_STEP_INVOCATIONS calls through its alias this step."""
    starved = []
    for group in shifting:
        served = {
            "FunctionName": group.function,
            "Resource": f"{group.function}:{group.alias}",
            "ExecutedVersion": new_versions[group.function],
        }
        key = MetricKey("AWS/Lambda", "Invocations", dimensions(served))
        if len(local.metrics.values(key, clock.step_started, time.time() + 1)) < MIN_STEP_INVOCATIONS:
            starved.append(group.function)
    return starved


def serving_version(routing: Mapping[str, float]) -> str:
    """The version an alias mostly points at (the one a shift moves away from)."""
    return max(routing.items(), key=lambda item: (item[1], int(item[0])))[0]


def log_alarm_changes(evaluator: AlarmEvaluator, log: TextIO) -> None:
    for change in evaluator.evaluate():
        log.write(f"  alarm {change.alarm}: {change.old_state} -> {change.new_state} ({change.reason})\n")
