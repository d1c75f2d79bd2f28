"""The port between the release runner and the local deployer: what a CloudFormation action asks for.

The runner turns a CloudFormation deploy action (after its change set) into a `DeployRequest`; a
`Deployer` provisions the environment in the local cloud, publishes versions, shifts the `live`
alias as the template's `DeploymentPreference` says (time-compressed), watches alarms and rolls
back on ALARM. It also evaluates the alarm rules of V2 stage conditions (the bake) and tells the
runner which variables point CodeBuild commands at the local cloud.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO


@dataclass(frozen=True)
class DeployRequest:
    environment: str  # `staging`, `production`: the `Environment` parameter override, else the stage name
    stack_name: str
    template: Path  # the packaged template, from the action's `TemplatePath`
    artifacts: Mapping[
        str, Path
    ]  # the action's input artifacts by name (package zips live beside the template)
    parameters: Mapping[str, str]  # `ParameterOverrides`
    capabilities: tuple[str, ...]
    commit: str  # the release's commit: the deployer labels versions with it
    time_scale: float  # real seconds per pipeline minute (a 10-minute canary at 2.0 takes 20 s)
    log: TextIO  # the action's log


@dataclass(frozen=True)
class DeployOutcome:
    succeeded: bool
    message: str
    alarm: str | None = None  # the alarm that rolled the deployment back, if one did
    outputs: Mapping[str, str] = field(default_factory=dict)  # stack outputs: the action's output variables


@dataclass(frozen=True)
class RuleOutcome:
    succeeded: bool
    message: str


class Deployer(Protocol):
    def build_environment(self) -> Mapping[str, str]:
        """Variables for CodeBuild commands: `AWS_ENDPOINT_URL`, region, fake credentials."""
        ...

    def deploy(self, request: DeployRequest) -> DeployOutcome:
        """Provision or update the environment and shift traffic; never raises for a failed deployment."""
        ...

    def evaluate_alarm_rule(
        self, *, environment: str | None, alarm_name: str, wait_minutes: float, time_scale: float, log: TextIO
    ) -> RuleOutcome:
        """A V2 `CloudWatchAlarm` rule: watch `alarm_name` for `wait_minutes` (time-compressed)."""
        ...

    def roll_back(self, *, environment: str, log: TextIO) -> DeployOutcome:
        """A stage condition's ROLLBACK: the environment serves again what it served before."""
        ...

    def alarms_published(self, *, log: TextIO) -> AbstractContextManager[None]:
        """While a build runs: the last deployed environment's alarm states, readable in its cloud."""
        ...

    def close(self) -> None:
        """Stop what the deployer started for this release (environments' state persists)."""
        ...


class UnavailableDeployer:
    """Stands in until the local deployer exists: deploy actions fail with a message that says so."""

    message = (
        "the local deployer (rehearsal/deployer.py) is not available yet: deployments cannot run offline"
    )

    def build_environment(self) -> Mapping[str, str]:
        return {}

    def deploy(self, request: DeployRequest) -> DeployOutcome:
        return DeployOutcome(False, self.message)

    def evaluate_alarm_rule(
        self, *, environment: str | None, alarm_name: str, wait_minutes: float, time_scale: float, log: TextIO
    ) -> RuleOutcome:
        return RuleOutcome(False, self.message)

    def roll_back(self, *, environment: str, log: TextIO) -> DeployOutcome:
        return DeployOutcome(False, self.message)

    def alarms_published(self, *, log: TextIO) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def close(self) -> None:
        return None
