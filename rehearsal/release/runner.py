"""The release runner: walks the synthesized pipeline for one commit, one executor per action type.

The pipeline that runs is the one "deployed" offline: `.rehearsal/pipeline/assembly/`, a copy of the
cloud assembly the last self-mutation deployed. The first release deploys it by synthesizing the
release's own source (the offline `make deploy`). Stages run in order; within a stage, actions run
by runOrder; actions that share a runOrder run in parallel (one thread each, one log each), as on AWS.
"""

from __future__ import annotations

import fcntl
import functools
import shutil

# Runs `make synth` with an argument list, never a shell (B404).
import subprocess  # nosec B404
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from rehearsal.base.aws import account_of_arn
from rehearsal.base.clock import run_id_stamp
from rehearsal.base.errors import UserError
from rehearsal.base.layout import StateLayout
from rehearsal.release.actions import ActionContext, ActionExecutors, Attempt, PipelineChanged, ReleaseOptions
from rehearsal.release.approval_inbox import ApprovalGate
from rehearsal.release.artifact_store import ArtifactStore
from rehearsal.release.deploy_port import Deployer, Outcome
from rehearsal.release.pipeline_model import Action, Condition, PipelineModel, Rule, Stage, load_pipeline
from rehearsal.release.recovery import recover_interrupted_release
from rehearsal.release.run_record import (
    FAILED,
    IN_PROGRESS,
    SUCCEEDED,
    ActionResult,
    Progress,
    ReleaseState,
    RunRecord,
    RunSummary,
    render_summary,
)
from rehearsal.release.source import SourceRevision, require_clean_tree

# The condition results the runner carries out; any other fails the stage closed (API_Condition lists
# ROLLBACK | FAIL | RETRY | SKIP). OnFailure conditions with rules are not evaluated, so refused too.
# A condition without a result fails its stage here (what AWS does then is unverified, ADR 0026).
_EMULATED_RESULTS: dict[str, tuple[str | None, ...]] = {
    "BeforeEntry": ("FAIL", None),
    "OnSuccess": ("ROLLBACK", "FAIL", None),
    "OnFailure": ("ROLLBACK", "FAIL"),
}


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
        self.layout = StateLayout(root=options.state_dir)
        self.pipeline_dir = self.layout.pipeline_assembly
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
        recovered = recover_interrupted_release(self.options.state_dir, self.deployer)
        record = self._open_record()
        if recovered is not None:
            self._announce_recovery(record, recovered)
        state = ReleaseState.load(self.options.state_dir)
        failed_stage: str | None = None
        message = ""
        try:
            self._run_attempts(record, state)
        except _StageFailed as failure:
            failed_stage, message = failure.stage, failure.message
        except UserError as error:
            failed_stage, message = "Setup", str(error)
        except KeyboardInterrupt:
            stage = record.stages[-1].name if record.stages else "Setup"
            record.finish(
                result=FAILED, failed_stage=stage, message="stopped with Ctrl-C", environments=state.view()
            )
            raise
        finally:
            self.deployer.close()
        result = FAILED if failed_stage else SUCCEEDED
        record.finish(
            result=result,
            failed_stage=failed_stage,
            message=message or "production reached",
            environments=state.view(),
        )
        summary = record.as_json()
        self.progress.text("\n" + render_summary(summary))
        return ReleaseResult(result == SUCCEEDED, record.run_id, record.directory, summary)

    def _announce_recovery(self, record: RunRecord, line: str) -> None:
        """A release killed earlier was put back before this one started (ADR 0055): say so once."""
        record.summary.notes.append(line)
        record.write()
        self.progress.line(line)

    def _open_record(self) -> RunRecord:
        """A new run record: the run id is the time and commit, with a suffix if that folder exists."""
        revision = self.options.revision
        base = run_id = _run_id(revision)
        suffix = 1
        while self.layout.run(run_id).exists():
            suffix += 1
            run_id = f"{base}.{suffix}"
        record = RunRecord(
            self.options.state_dir,
            RunSummary(
                run_id=run_id,
                commit=revision.commit,
                branch=revision.branch,
                commit_message=revision.message,
                record=str(self.layout.run(run_id)),
            ),
        )
        self.progress.line(f"Release {run_id}: {revision.short} {revision.message!r} on {revision.branch}")
        return record

    def _run_attempts(self, record: RunRecord, state: ReleaseState) -> None:
        """Run the deployed pipeline; when self-mutation changes it, start again on the new definition."""
        model = self._deployed_pipeline(record)
        for attempt in range(1, self.options.max_restarts + 2):
            record.start_attempt(attempt)
            self.progress.fit(
                [s.name for s in model.stages],
                [a.name for s in model.stages for a in s.actions] + ["OnSuccess.Bake", "Rollback"],
            )
            record.summary.pipeline = _pipeline_summary(model)
            try:
                self._execute(model, record, state)
                return
            except PipelineChanged as restart:
                if not restart.model.restart_on_update:
                    raise _StageFailed(
                        "UpdatePipeline",
                        "cancelled: the pipeline's definition was updated before this execution completed, "
                        "and RestartExecutionOnUpdate is false: push again to release on the new definition",
                    ) from None
                self._announce_restart(record, restart)
                model = restart.model
        raise _StageFailed("UpdatePipeline", "the pipeline definition kept changing: restarted too often")

    @contextmanager
    def _release_lock(self) -> Iterator[None]:
        """V2 QUEUED execution mode: a second release waits for the running one."""
        with self.layout.lock.open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.progress.line("Another release is running: this one is queued behind it")
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _announce_restart(self, record: RunRecord, restart: PipelineChanged) -> None:
        record.summary.restarts.append({"changes": restart.changes})
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

    def _execute(self, model: PipelineModel, record: RunRecord, state: ReleaseState) -> None:
        record.artifacts.mkdir(exist_ok=True)
        for stale in record.artifacts.iterdir():
            shutil.rmtree(stale)
        attempt = Attempt(model, ArtifactStore(record.artifacts))
        attempt.environments_before = dict(
            state.environments
        )  # records are frozen: a copy of the map is enough
        attempt.variables["codepipeline"] = {"PipelineExecutionId": record.run_id}
        for index, stage in enumerate(model.stages):
            stage_result = record.stage(stage.name)
            _refuse_conditions_not_emulated(stage)
            upcoming = (model.deploy_target(later) for later in model.stages[index + 1 :])
            next_environment = next((target.environment for target in upcoming if target is not None), None)
            if next_environment is not None:
                self.deployer.start_ahead(next_environment)
            self._check_conditions(model, stage, stage.before_entry, "BeforeEntry", record)
            try:
                for group in stage.action_groups():
                    self._run_group(group, attempt, record, state)
            except _StageFailed:
                if stage.on_failure_result == "ROLLBACK":
                    self._roll_back_stage(stage, attempt, record, state)
                raise
            try:
                self._check_conditions(model, stage, stage.on_success, "OnSuccess", record)
            except _StageFailed:
                if any(c.result == "ROLLBACK" for c in stage.on_success):
                    self._roll_back_stage(stage, attempt, record, state)
                raise
            stage_result.state = SUCCEEDED
            record.write()

    def _check_conditions(
        self,
        model: PipelineModel,
        stage: Stage,
        conditions: tuple[Condition, ...],
        kind: str,
        record: RunRecord,
    ) -> None:
        for condition in conditions:
            for rule in condition.rules:
                outcome = self._timed(
                    record,
                    stage.name,
                    f"{kind}.{rule.name}",
                    f"rule {rule.provider}",
                    functools.partial(self._evaluate_rule, model, stage, rule),
                )
                if outcome.state == FAILED:
                    raise _StageFailed(stage.name, f"{kind} rule {rule.name}: {outcome.message}")

    def _roll_back_stage(
        self, stage: Stage, attempt: Attempt, record: RunRecord, state: ReleaseState
    ) -> None:
        """A ROLLBACK result (OnSuccess condition or OnFailure): the environment serves its earlier release.

        AWS rolls a stage back only to an execution that succeeded in it, so a first release is not
        rolled back; a deployment CloudFormation already rolled back leaves nothing to undo.
        """
        target = attempt.model.deploy_target(stage)
        environment = target.environment if target is not None else None
        previous = attempt.environments_before.get(environment or "")
        if environment is None or previous is None:
            return
        if state.environments.get(environment) == previous:
            self._timed(
                record,
                stage.name,
                "Rollback",
                "stage rollback",
                lambda log: Outcome.passed(f"{environment} already serves its previous release"),
            )
            return

        def roll_back(log: TextIO) -> Outcome:
            outcome = self.deployer.roll_back(environment=environment, log=log)
            if outcome.succeeded:
                state.serve(environment, attempt.environments_before.get(environment))
            return outcome

        self._timed(record, stage.name, "Rollback", "stage rollback", roll_back)

    def _evaluate_rule(self, model: PipelineModel, stage: Stage, rule: Rule, log: TextIO) -> Outcome:
        if rule.provider != "CloudWatchAlarm":
            # Fail closed: a rule the rehearsal cannot judge must not let a release through.
            return Outcome.failed(
                f"rule provider {rule.provider} is not emulated offline: the stage fails closed "
                "(only CloudWatchAlarm rules are judged)"
            )
        role_account = account_of_arn(rule.role_arn or "")
        if role_account not in (None, model.place.account_id):
            # AWS documents a rule's roleArn as "the pipeline role ARN" and no rule reading another
            # account (ADR 0049): do not let a release through on an assumption.
            return Outcome.failed(
                f"rule {rule.name} runs as {rule.role_arn}, a role in account {role_account}, not the "
                f"pipeline's ({model.place.account_id}): a rule reading another account is not documented "
                "by AWS, so it fails closed offline; bake in the environment's test build instead (ADR 0018)"
            )
        place = model.rule_place(rule)
        target = model.deploy_target(stage)
        log.write(f"The rule reads alarms of account {place.account_id} in {place.region}\n")
        outcome = self.deployer.evaluate_alarm_rule(
            environment=target.environment if target is not None else None,
            place=place,
            alarm_name=rule.configuration.get("AlarmName", ""),
            wait_minutes=float(rule.configuration.get("WaitTime", "0") or 0),
            log=log,
        )
        return outcome

    # ------------------------------------------------------------ actions

    def _run_group(
        self, group: list[Action], attempt: Attempt, record: RunRecord, state: ReleaseState
    ) -> None:
        """Actions of one runOrder in parallel; the stage fails (or restarts) once all of them have ended."""
        if len(group) == 1:
            self._run_action(group[0], attempt, record, state)
            return
        with ThreadPoolExecutor(max_workers=len(group), thread_name_prefix="action") as pool:
            futures = [pool.submit(self._run_action, action, attempt, record, state) for action in group]
        errors = [error for error in (f.exception() for f in futures) if error is not None]
        for kind in (_StageFailed, PipelineChanged):
            first = next((e for e in errors if isinstance(e, kind)), None)
            if first is not None:
                raise first
        if errors:
            raise errors[0]

    def _run_action(self, action: Action, attempt: Attempt, record: RunRecord, state: ReleaseState) -> None:
        executor = self.executors.executor_for(action, attempt.model)
        result = self._timed(
            record,
            action.stage,
            action.name,
            str(action.type),
            lambda log: executor(
                ActionContext(
                    action=action,
                    attempt=attempt,
                    record=record,
                    state=state,
                    log=log,
                    not_emulated=record.summary.not_emulated,
                )
            ),
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
        # Line-buffered: `tail -f` on an action's log follows it live, and a killed runner loses no line.
        with open(result.log, "a", encoding="utf-8", buffering=1) as log:
            try:
                outcome: Outcome = body(log)
            except PipelineChanged:
                result.state, result.message = SUCCEEDED, "pipeline definition changed: restarting"
                result.elapsed = time.monotonic() - started
                record.write()
                self.progress.action(result)
                raise
            except UserError as error:
                outcome = Outcome.failed(str(error))
            if not outcome.succeeded:
                log.write(f"\nAction failed: {outcome.message}\n")
        record.summary.alarm_evidence.add(outcome.alarm_evidence, where=f"{stage}/{name}")
        result.state = SUCCEEDED if outcome.succeeded else FAILED
        result.message = outcome.message
        result.alarm = outcome.alarm
        result.elapsed = time.monotonic() - started
        record.write()
        self.progress.action(result)
        return result


def _refuse_conditions_not_emulated(stage: Stage) -> None:
    """Fail closed: a condition the runner would not carry out as AWS does stops the stage, named."""
    kinds = (
        ("BeforeEntry", stage.before_entry),
        ("OnSuccess", stage.on_success),
        ("OnFailure", stage.on_failure),
    )
    for kind, conditions in kinds:
        for condition in conditions:
            if condition.result not in _EMULATED_RESULTS[kind]:
                raise _StageFailed(
                    stage.name,
                    f"{kind} condition result {condition.result} is not emulated offline: fails closed",
                )
            if kind == "OnFailure" and condition.rules:
                raise _StageFailed(
                    stage.name, "OnFailure conditions with rules are not emulated offline: fails closed"
                )
    if stage.on_failure_result not in (None, *_EMULATED_RESULTS["OnFailure"]):
        raise _StageFailed(
            stage.name, f"OnFailure result {stage.on_failure_result} is not emulated offline: fails closed"
        )


def _pipeline_summary(model: PipelineModel) -> dict[str, object]:
    """The definition that ran, and where: the pipeline's account and region and each environment's."""
    targets = [t for t in (model.deploy_target(stage) for stage in model.stages) if t is not None]
    return {
        "stack": model.stack_name,
        "stages": [s.name for s in model.stages],
        "account": model.place.account_id,
        "region": model.place.region,
        "environments": {
            t.environment: {"account": t.place.account_id, "region": t.place.region} for t in targets
        },
    }


def _run_id(revision: SourceRevision) -> str:
    return f"{run_id_stamp()}-{revision.short}"


__all__ = [
    "IN_PROGRESS",
    "MakeSynthesizer",
    "ReleaseOptions",
    "ReleaseResult",
    "ReleaseRunner",
    "Synthesizer",
]
