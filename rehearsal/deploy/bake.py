"""The bake: a V2 stage condition's `CloudWatchAlarm` rule, watched for its wait time.

The environment's declared traffic (its scheduled rules) runs meanwhile as it always does; the bake
adds none, and its outcome says for each alarm of the rule whether it judged with data or without.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TextIO

from rehearsal.alarms.evaluator import ALARM, AlarmEvaluator, CompositeAlarmDefinition
from rehearsal.deploy.shift import log_alarm_changes, log_evidence, poll
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

    outcome = poll(check)
    evidence = evaluator.evidence(rule.members(), environment=local.name, watched="bake")
    log_evidence(evidence, log)
    return dataclasses.replace(outcome, alarm_evidence=evidence)
