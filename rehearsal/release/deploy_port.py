"""The port between the release runner and the local deployer: what a CloudFormation action asks for.

The runner turns a CloudFormation deploy action (after its change set) into a `DeployRequest`; a
`Deployer` provisions the environment in the local cloud, publishes versions, shifts the `live`
alias as the template's `DeploymentPreference` says (time-compressed), watches alarms and rolls
back on ALARM. It also evaluates the alarm rules of V2 stage conditions (the bake) and tells the
runner which variables point CodeBuild commands at the local cloud.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from rehearsal.alarms.evaluator import AlarmEvidence
from rehearsal.base.aws import DEFAULT_PLACE, AccountRegion
from rehearsal.release.fidelity import NotEmulated

# Action modes that create or update the stack directly, without a change set: only these need
# CAPABILITY_AUTO_EXPAND for a transform (CreateChangeSet: "This capacity doesn't apply to creating
# change sets"). Whether CodePipeline's CREATE_UPDATE uses a change set internally is unverified.
DIRECT_ACTION_MODES = frozenset({"CREATE_UPDATE", "REPLACE_ON_FAILURE"})


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
    log: TextIO  # the action's log
    place: AccountRegion = DEFAULT_PLACE  # the action's account (its RoleArn's) and Region
    action_mode: str = "CHANGE_SET_EXECUTE"  # the action's ActionMode (CREATE_UPDATE: no change set)


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How an action, a deployment, a stage rule or a rollback ended: the one result type of a release."""

    succeeded: bool
    message: str
    alarm: str | None = None  # the alarm that rolled a deployment back, if one did
    outputs: Mapping[str, str] = field(default_factory=dict)  # stack outputs: the action's output variables
    # What this deployment only stood in for (a resource type provisioned as a name only, ...).
    not_emulated: tuple[NotEmulated, ...] = ()
    # Per watched alarm (a canary's deployment alarms, a bake's): did it judge with data or without.
    alarm_evidence: tuple[AlarmEvidence, ...] = ()

    @classmethod
    def passed(cls, message: str, *, outputs: Mapping[str, str] | None = None) -> Outcome:
        return cls(succeeded=True, message=message, outputs=dict(outputs or {}))

    @classmethod
    def failed(cls, message: str, alarm: str | None = None) -> Outcome:
        return cls(succeeded=False, message=message, alarm=alarm)


@dataclass(frozen=True, kw_only=True)
class RecoveredEnvironment:
    """An environment a killed release left mid-deployment, put back on its last promoted release."""

    environment: str
    serving: str  # the commit the environment serves again
    abandoned: str  # the commit whose deployment was interrupted


class Deployer(Protocol):
    def build_environment(self, place: AccountRegion) -> Mapping[str, str]:
        """Variables for CodeBuild commands reaching `place` only: its cloud's `AWS_ENDPOINT_URL`,
        region and credentials."""
        ...

    def start_ahead(self, environment: str) -> None:
        """Start the environment's last deployed release now, in the background, for its deploy action
        later in this release (nothing for one never deployed)."""
        ...

    def deploy(self, request: DeployRequest) -> Outcome:
        """Provision or update the environment and shift traffic; never raises for a failed deployment."""
        ...

    def evaluate_alarm_rule(
        self,
        *,
        environment: str | None,
        place: AccountRegion,
        alarm_name: str,
        wait_minutes: float,
        log: TextIO,
    ) -> Outcome:
        """A V2 `CloudWatchAlarm` rule run in `place`: watch `alarm_name`, an alarm of that account and
        region, for `wait_minutes` (time-compressed); an alarm that lives elsewhere is not there."""
        ...

    def roll_back(self, *, environment: str, log: TextIO) -> Outcome:
        """A stage condition's ROLLBACK: the environment serves again what it served before."""
        ...

    def alarms_published(self, *, log: TextIO) -> AbstractContextManager[list[AlarmEvidence]]:
        """While a build runs: the last deployed environment's alarm states, readable in its cloud.

        The list it gives is filled on exit: what each published alarm judged with meanwhile.
        """
        ...

    def recover_interrupted(self) -> tuple[RecoveredEnvironment, ...]:
        """Before a release (lock held): undo deployments a killed release left in flight."""
        ...

    def close(self) -> None:
        """Stop what the deployer started for this release (environments' state persists)."""
        ...
