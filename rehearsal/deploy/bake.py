"""The bake: a V2 stage condition's `CloudWatchAlarm` rule, watched for its wait time with traffic running."""

from __future__ import annotations

import time
from typing import TextIO

from rehearsal.alarms.evaluator import ALARM, AlarmEvaluator, CompositeAlarmDefinition
from rehearsal.deploy.shift import log_alarm_changes, poll
from rehearsal.deploy.traffic import start_traffic
from rehearsal.release.deploy_port import Outcome
from rehearsal.runtime.environment import LocalEnvironment


def bake(
    local: LocalEnvironment,
    *,
    rule: CompositeAlarmDefinition,
    evaluator: AlarmEvaluator,
    wait_minutes: float,
    log: TextIO,
) -> Outcome:
    """Fail as soon as `rule` is in ALARM; pass when `wait_minutes` (compressed) went by without it."""
    seconds = local.time_scale.real_seconds_for_minutes(wait_minutes)
    log.write(f"Watching {rule.name} for {wait_minutes:g} pipeline minutes ({seconds:.1f} s): {rule.rule}\n")
    deadline = time.monotonic() + seconds

    def check() -> Outcome | None:
        log_alarm_changes(evaluator, log)
        if rule.state(evaluator.states) == ALARM:
            firing = [m for m in rule.members() if evaluator.states.get(m) == ALARM]
            return Outcome.failed(f"alarm {rule.name} went to ALARM during the bake ({', '.join(firing)})")
        if time.monotonic() >= deadline:
            return Outcome.passed(f"alarm {rule.name} stayed OK for {wait_minutes:g} minutes")
        return None

    driver = start_traffic(local, log)
    try:
        return poll(check)
    finally:
        driver.stop()
        log.write(f"{driver.describe()}\n")
