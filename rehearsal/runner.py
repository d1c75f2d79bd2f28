"""The release runner: walks the synthesized pipeline for one commit, one executor per action type.

The pipeline that runs is the one "deployed" offline: `.rehearsal/pipeline/assembly/`, a copy of the
cloud assembly the last self-mutation deployed. The first release deploys it by synthesizing the
release's own source (the offline `make deploy`). Stages run in order; within a stage, actions run
by runOrder (actions that share a runOrder run one after another here, in parallel on AWS).
"""

from __future__ import annotations

import copy
import fcntl
import functools
import shutil

# Runs `make synth` with an argument list, never a shell (B404).
import subprocess  # nosec B404
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from rehearsal.actions import ActionExecutors, Attempt, Outcome, PipelineChanged, ReleaseOptions
from rehearsal.approval import ApprovalGate
from rehearsal.artifacts import ArtifactStore
from rehearsal.deployment import Deployer
from rehearsal.errors import UserError
from rehearsal.pipeline_model import Action, Condition, PipelineModel, Rule, Stage, load_pipeline
from rehearsal.run_record import (
    FAILED,
    IN_PROGRESS,
    SUCCEEDED,
    ActionResult,
    Progress,
    RunRecord,
    environments_view,
    load_state,
    render_summary,
    save_state,
)
from rehearsal.source import SourceRevision, require_clean_tree

_EXECUTING_MODES = ("CHANGE_SET_EXECUTE", "CREATE_UPDATE", "REPLACE_ON_FAILURE")


class Synthesizer(Protocol):
    def synthesize(self, source_dir: Path, log: TextIO) -> Path:
        """Synthesize the pipeline app in `source_dir`; return the cloud assembly folder."""
        ...


class MakeSynthesizer:
    """`make synth` in the source snapshot: the same command the pipeline's own Synth action runs."""

    def synthesize(self, source_dir: Path, log: TextIO) -> Path:
        make = shutil.which("make")
        if make is None:
            raise UserError("make is not installed: install make to run a release")
        log.flush()
        # Make from PATH with fixed arguments, no shell (B603).
        completed = subprocess.run(  # nosec B603
            [make, "synth"],
            cwd=source_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if completed.returncode != 0:
            raise UserError(
                f"`make synth` failed for the release's source: see {getattr(log, 'name', 'its log')}"
            )
        return source_dir / "cdk.out"


@dataclass
class ReleaseResult:
    succeeded: bool
    run_id: str
    run_dir: Path
    summary: dict[str, object]


class _StageFailed(Exception):
    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message


class ReleaseRunner:
    def __init__(
        self,
        options: ReleaseOptions,
        *,
        deployer: Deployer,
        approvals: ApprovalGate,
        synthesizer: Synthesizer | None = None,
    ) -> None:
        self.options = options
        self.deployer = deployer
        self.approvals = approvals
        self.synthesizer = synthesizer or MakeSynthesizer()
        self.progress = Progress(options.out)
        self.pipeline_dir = options.state_dir / "pipeline" / "assembly"
        self.executors = ActionExecutors(
            options, deployer=deployer, approvals=approvals, progress=self.progress
        )

    # ------------------------------------------------------------ the release

    def run(self) -> ReleaseResult:
        options = self.options
        if not options.allow_dirty and options.revision.git_dir is None:
            require_clean_tree(options.repo)
        options.state_dir.mkdir(parents=True, exist_ok=True)
        with self._release_lock():
            return self._run_locked()

    def _run_locked(self) -> ReleaseResult:
        revision = self.options.revision
        base = run_id = _run_id(revision)
        suffix = 1
        while (self.options.state_dir / "runs" / run_id).exists():
            suffix += 1
            run_id = f"{base}.{suffix}"
        record = RunRecord(
            self.options.state_dir,
            run_id,
            {
                "commit": revision.commit,
                "branch": revision.branch,
                "commit_message": revision.message,
                "record": str(self.options.state_dir / "runs" / run_id),
                "restarts": [],
                "approvals": [],
                "notes": [],
            },
        )
        self.progress.line(f"Release {run_id}: {revision.short} {revision.message!r} on {revision.branch}")
        state = load_state(self.options.state_dir)
        failed_stage: str | None = None
        message = ""
        try:
            model = self._deployed_pipeline(record)
            for attempt in range(1, self.options.max_restarts + 2):
                record.start_attempt(attempt)
                self.progress.fit(
                    [s.name for s in model.stages],
                    [a.name for s in model.stages for a in s.actions] + ["OnSuccess.Bake", "Rollback"],
                )
                record.summary["pipeline"] = {
                    "stack": model.stack_name,
                    "stages": [s.name for s in model.stages],
                }
                try:
                    self._execute(model, record, state)
                    break
                except PipelineChanged as restart:
                    self._announce_restart(record, restart)
                    model = restart.model
            else:
                raise _StageFailed(
                    "UpdatePipeline", "the pipeline definition kept changing: restarted too often"
                )
        except _StageFailed as failure:
            failed_stage, message = failure.stage, failure.message
        except UserError as error:
            failed_stage, message = "Setup", str(error)
        except KeyboardInterrupt:
            stage = record.stages[-1].name if record.stages else "Setup"
            record.finish(
                result=FAILED,
                failed_stage=stage,
                message="stopped with Ctrl-C",
                environments=environments_view(state),
            )
            raise
        finally:
            self.deployer.close()
        result = FAILED if failed_stage else SUCCEEDED
        record.finish(
            result=result,
            failed_stage=failed_stage,
            message=message or "production reached",
            environments=environments_view(state),
        )
        self.progress.text("\n" + render_summary(record.summary))
        return ReleaseResult(result == SUCCEEDED, run_id, record.directory, record.summary)

    @contextmanager
    def _release_lock(self) -> Iterator[None]:
        """V2 QUEUED execution mode: a second release waits for the running one."""
        with (self.options.state_dir / "release.lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.progress.line("Another release is running: this one is queued behind it")
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _announce_restart(self, record: RunRecord, restart: PipelineChanged) -> None:
        record.summary["restarts"].append({"changes": restart.changes})
        self.progress.line("Pipeline definition changed by this release; restarting on the new definition:")
        for change in restart.changes[:40]:
            self.progress.text(f"         {change}\n")

    def _deployed_pipeline(self, record: RunRecord) -> PipelineModel:
        if not (self.pipeline_dir / "manifest.json").is_file():
            self.progress.line(
                "No pipeline deployed offline yet: synthesizing it from this commit (offline `make deploy`)"
            )
            workspace = record.workspaces / "bootstrap"
            self.executors.prepare_source(workspace)
            self.executors.link_tools(workspace)
            with record.log_path("Bootstrap", "Synth").open("w", encoding="utf-8") as log:
                assembly = self.synthesizer.synthesize(workspace, log)
            load_pipeline(assembly, self.options.stack_name)  # refuse an assembly without the pipeline
            self.executors.deploy_pipeline(assembly)
        return load_pipeline(self.pipeline_dir, self.options.stack_name)

    # ------------------------------------------------------------ stages

    def _execute(self, model: PipelineModel, record: RunRecord, state: dict[str, Any]) -> None:
        record.artifacts.mkdir(exist_ok=True)
        for stale in record.artifacts.iterdir():
            shutil.rmtree(stale)
        attempt = Attempt(model, ArtifactStore(record.artifacts))
        attempt.environments_before = copy.deepcopy(state.get("environments") or {})
        attempt.variables["codepipeline"] = {"PipelineExecutionId": record.run_id}
        for stage in model.stages:
            stage_result = record.stage(stage.name)
            self._check_conditions(stage, stage.before_entry, "BeforeEntry", record)
            try:
                for group in stage.action_groups():
                    for action in group:
                        self._run_action(action, attempt, record, state)
            except _StageFailed:
                if stage.on_failure_result == "ROLLBACK":
                    self._roll_back_stage(stage, attempt, record, state)
                raise
            try:
                self._check_conditions(stage, stage.on_success, "OnSuccess", record)
            except _StageFailed:
                if any(c.result == "ROLLBACK" for c in stage.on_success):
                    self._roll_back_stage(stage, attempt, record, state)
                raise
            stage_result.state = SUCCEEDED
            record.write()

    def _check_conditions(
        self, stage: Stage, conditions: tuple[Condition, ...], kind: str, record: RunRecord
    ) -> None:
        for condition in conditions:
            for rule in condition.rules:
                outcome = self._timed(
                    record,
                    stage.name,
                    f"{kind}.{rule.name}",
                    f"rule {rule.provider}",
                    functools.partial(self._evaluate_rule, stage, rule),
                )
                if outcome.state == FAILED:
                    raise _StageFailed(stage.name, f"{kind} rule {rule.name}: {outcome.message}")

    def _roll_back_stage(
        self, stage: Stage, attempt: Attempt, record: RunRecord, state: dict[str, Any]
    ) -> None:
        """A ROLLBACK result (OnSuccess condition or OnFailure): the environment serves its earlier release.

        AWS rolls a stage back only to an execution that succeeded in it, so a first release is not
        rolled back; a deployment CloudFormation already rolled back leaves nothing to undo.
        """
        environment = _stage_environment(stage)
        previous = attempt.environments_before.get(environment or "")
        if environment is None or previous is None:
            return
        if (state.get("environments") or {}).get(environment) == previous:
            self._timed(
                record,
                stage.name,
                "Rollback",
                "stage rollback",
                lambda log: Outcome(True, f"{environment} already serves its previous release"),
            )
            return

        def roll_back(log: TextIO) -> Outcome:
            outcome = self.deployer.roll_back(environment=environment, log=log)
            if outcome.succeeded:
                previous = attempt.environments_before.get(environment)
                environments = state.setdefault("environments", {})
                if previous is None:
                    environments.pop(environment, None)
                else:
                    environments[environment] = previous
                save_state(self.options.state_dir, state)
            return Outcome(outcome.succeeded, outcome.message)

        self._timed(record, stage.name, "Rollback", "stage rollback", roll_back)

    def _evaluate_rule(self, stage: Stage, rule: Rule, log: TextIO) -> Outcome:
        if rule.provider != "CloudWatchAlarm":
            log.write(f"Rule provider {rule.provider} is not emulated offline: treated as passed\n")
            return Outcome(True, f"{rule.provider} not emulated offline: passed")
        outcome = self.deployer.evaluate_alarm_rule(
            environment=_stage_environment(stage),
            alarm_name=rule.configuration.get("AlarmName", ""),
            wait_minutes=float(rule.configuration.get("WaitTime", "0") or 0),
            time_scale=self.options.time_scale,
            log=log,
        )
        return Outcome(outcome.succeeded, outcome.message)

    # ------------------------------------------------------------ actions

    def _run_action(self, action: Action, attempt: Attempt, record: RunRecord, state: dict[str, Any]) -> None:
        executor = self.executors.executor_for(action, attempt.model)
        result = self._timed(
            record,
            action.stage,
            action.name,
            str(action.type),
            lambda log: executor(action, attempt, record, state, log),
        )
        if result.state == FAILED:
            raise _StageFailed(action.stage, f"{action.name}: {result.message}")

    def _timed(
        self, record: RunRecord, stage: str, name: str, kind: str, body: Callable[[TextIO], Outcome]
    ) -> ActionResult:
        result = ActionResult(stage, name, kind, log=str(record.log_path(stage, name)))
        record.stages[-1].actions.append(result)
        record.write()
        self.progress.action(result)
        started = time.monotonic()
        with open(result.log, "a", encoding="utf-8") as log:
            try:
                outcome: Outcome = body(log)
            except PipelineChanged:
                result.state, result.message = SUCCEEDED, "pipeline definition changed: restarting"
                result.elapsed = time.monotonic() - started
                record.write()
                self.progress.action(result)
                raise
            except UserError as error:
                outcome = Outcome(False, str(error))
            if not outcome.succeeded:
                log.write(f"\nAction failed: {outcome.message}\n")
        result.state = SUCCEEDED if outcome.succeeded else FAILED
        result.message = outcome.message
        result.alarm = outcome.alarm
        result.elapsed = time.monotonic() - started
        record.write()
        self.progress.action(result)
        return result


def _run_id(revision: SourceRevision) -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + revision.short


def _stage_environment(stage: Stage) -> str | None:
    for action in stage.actions:
        if action.type.provider == "CloudFormation" and action.configuration.get("ActionMode") in (
            "CHANGE_SET_REPLACE",
            *_EXECUTING_MODES,
        ):
            return action.parameter_overrides.get("Environment") or stage.name.lower()
    return None


__all__ = [
    "IN_PROGRESS",
    "MakeSynthesizer",
    "ReleaseOptions",
    "ReleaseResult",
    "ReleaseRunner",
    "Synthesizer",
]
