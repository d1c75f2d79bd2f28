"""CodeDeploy's traffic-shifting schedules: the weight a new version gets over (pipeline) minutes.

`traffic_steps()` turns a CodeDeploy Lambda deployment configuration into those weights. The
requests themselves come only from what the release declares (a schedule-triggered traffic
source, the PreTraffic hook, the tests): `rehearsal.runtime.schedules` runs the first.
"""

from __future__ import annotations

import re

from rehearsal.base.errors import UserError

_CANARY = re.compile(r"^(?:CodeDeployDefault\.Lambda)?Canary(\d+)Percent(\d+)Minutes?$")
_LINEAR = re.compile(r"^(?:CodeDeployDefault\.Lambda)?Linear(\d+)PercentEvery(\d+)Minutes?$")
_ALL_AT_ONCE = re.compile(r"^(?:CodeDeployDefault\.Lambda)?AllAtOnce$")


def traffic_steps(config_name: str) -> list[tuple[float, float]]:
    """`(minute, weight of the new version)` from the start of the shift; the last weight is 1.0."""
    if _ALL_AT_ONCE.match(config_name):
        return [(0.0, 1.0)]
    canary = _CANARY.match(config_name)
    if canary:
        percent, minutes = int(canary.group(1)), float(canary.group(2))
        return [(0.0, percent / 100), (minutes, 1.0)]
    linear = _LINEAR.match(config_name)
    if linear:
        percent, every = int(linear.group(1)), float(linear.group(2))
        steps: list[tuple[float, float]] = []
        weight, minute = percent, 0.0
        while weight < 100:  # percent
            steps.append((minute, weight / 100))
            weight += percent
            minute += every
        steps.append((minute, 1.0))
        return steps
    raise UserError(
        f"deployment configuration {config_name!r} is not emulated: use a Canary, Linear or AllAtOnce one"
    )


def weight_at(steps: list[tuple[float, float]], minute: float) -> float:
    """The new version's weight `minute` pipeline minutes into the shift."""
    weight = 0.0
    for start, value in steps:
        if minute >= start:
            weight = value
    return weight
