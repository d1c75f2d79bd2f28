"""CloudWatch as a build running after a deploy action sees it: the environment's alarm states.

The pipeline's bake runs inside the environment's test build (`make bake` polls DescribeAlarms),
so while such a build runs the environment's alarms are evaluated from its metrics (the same
evaluator a canary uses) and each state is published to its local cloud. The local cloud (moto)
neither evaluates alarms nor has PutCompositeAlarm, so every alarm is published under its own
name as a metric alarm whose state is set with SetAlarmState: only names and states are real.
The publisher sends no request itself; `evidence()` says which alarms judged with data meanwhile.
"""

from __future__ import annotations

import threading
from typing import Any, TextIO

from rehearsal.alarms.evaluator import AlarmEvidence
from rehearsal.deploy.shift import POLL_SECONDS, log_alarm_changes
from rehearsal.runtime.environment import LocalEnvironment


class AlarmPublisher:
    """Evaluates one environment's alarms in a thread and publishes each change of state."""

    def __init__(self, local: LocalEnvironment, *, log: TextIO) -> None:
        self._evaluator, alarms = local.alarm_evaluator()
        for problem in alarms.problems:
            log.write(f"Alarm not evaluated offline: {problem}\n")
        self._composite = alarms.composite
        self._names = [m.name for m in alarms.metric] + [c.name for c in alarms.composite]
        self._environment = local.name
        self._cloudwatch: Any = local.cloud.client("cloudwatch")
        self._log = log
        self._published: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alarm-publisher", daemon=True)

    def start(self) -> None:
        for name in self._names:
            self._cloudwatch.put_metric_alarm(
                AlarmName=name,
                AlarmDescription="state published by the rehearsal's alarm evaluator",
                Namespace="Rehearsal",
                MetricName="PublishedState",
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=0,
                ComparisonOperator="GreaterThanThreshold",
            )
        self.publish()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def publish(self) -> None:
        """Evaluate once and publish the alarms whose state changed."""
        log_alarm_changes(self._evaluator, self._log)
        states = dict(self._evaluator.states)
        states.update({c.name: c.state(states) for c in self._composite})
        for name in self._names:
            state = states.get(name, "INSUFFICIENT_DATA")
            if self._published.get(name) != state:
                self._cloudwatch.set_alarm_state(
                    AlarmName=name, StateValue=state, StateReason="evaluated by the rehearsal"
                )
                self._published[name] = state

    def evidence(self) -> tuple[AlarmEvidence, ...]:
        """For the alarms a bake reads (the members of the composite alarms): judged with data or not.

        Over the whole build (its tests, then `make bake`): the publisher cannot tell when the bake
        starts, so data the tests themselves caused counts too (`watched` says "build").
        """
        members = dict.fromkeys(name for composite in self._composite for name in composite.members())
        return self._evaluator.evidence(members, environment=self._environment, watched="build")

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.publish()
