"""CodeBuild buildspec interpreter: runs a `version: 0.2` buildspec on this machine with CodeBuild's rules.

What is emulated, as CodeBuild documents it:
- all commands of a build run in one bash "instance": variables exported and the directory changed
  by one command are seen by the next, in the same phase and in later phases (each phase runs as one
  bash script; its environment and working directory are dumped at exit and fed to the next phase);
- a phase stops at its first failing command, then runs its `finally` commands;
- phase transitions: a failed `install` or `pre_build` skips every later phase; a failed `build`
  still runs `post_build` (with `CODEBUILD_BUILD_SUCCEEDING=0`); `on-failure: ABORT` stops after
  the failing phase, `on-failure: CONTINUE` goes on to the next phase; the build fails either way;
- artifacts are always attempted, even after a failed phase; `reports` files are collected;
- precedence of variables: start-build (the action's) > project > buildspec `env.variables`.

- `runtime-versions` are checked against what the project's image preinstalls (`build_image.py`): one
  it lacks fails INSTALL with one line; the machine's tool for a selected version goes first on PATH;
- `TimeoutInMinutes` in real time, except that a wait the build declares in pipeline minutes (the
  bake, `BAKE_MINUTES`), which runs compressed offline, counts at its full length (ADR 0060);
- `cache.paths` are handed to the runner, which restores the project's cache (`build_host.py`).

What cannot be emulated is said in `BuildResult.notes` (run-as, proxy, a runtime this machine lacks, ...).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal

# Runs the buildspec's commands, which is this module's purpose (B404).
import subprocess  # nosec B404
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from rehearsal.base.errors import UserError
from rehearsal.release.artifact_store import copy_matching_files
from rehearsal.release.build_image import RuntimeVersionError, select_runtimes
from rehearsal.release.build_shell import phase_script, read_env_dump, read_status

PHASES = ("install", "pre_build", "build", "post_build")
_BASH = shutil.which("bash") or "/bin/bash"
TIMED_OUT = -1  # a PhaseResult's exit status when the build's timeout stopped the phase
RUNTIME_REFUSED = -2  # ... when the image does not offer a runtime version the phase selects
_IGNORED_TOP_LEVEL = {
    "run-as": "run-as is ignored: commands run as the current user",
    "proxy": "proxy settings are ignored offline",
    "batch": "batch builds are not emulated: the build runs once",
}


class BuildspecError(UserError):
    """A buildspec that CodeBuild itself would reject: says which key is wrong."""


@dataclass(frozen=True)
class Phase:
    name: str
    commands: tuple[str, ...]
    finally_commands: tuple[str, ...] = ()
    on_failure: str | None = None  # None follows CodeBuild's default transitions
    runtime_versions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FileSet:
    """An artifact or report definition: `files` globs under `base-directory`."""

    files: tuple[str, ...]
    base_directory: str = ""
    discard_paths: bool = False
    name: str | None = None


@dataclass(frozen=True)
class Buildspec:
    version: str
    variables: Mapping[str, str]
    parameter_store: Mapping[str, str]
    secrets_manager: Mapping[str, str]
    exported_variables: tuple[str, ...]
    command_shell: str
    phases: tuple[Phase, ...]
    primary_artifact: FileSet | None
    secondary_artifacts: Mapping[str, FileSet]
    reports: Mapping[str, FileSet]
    notes: tuple[str, ...]
    cache_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhaseResult:
    name: str
    succeeded: bool
    failed_command: str | None = None
    exit_status: int = 0


@dataclass
class BuildResult:
    succeeded: bool
    phases: list[PhaseResult]
    exported_variables: dict[str, str]
    notes: list[str]
    message: str


@dataclass(frozen=True)
class BuildContext:
    """Where a build runs and what it gets: the runner fills this in for each CodeBuild action."""

    source_dir: Path
    base_environment: Mapping[str, str]
    overrides: Mapping[str, str]
    log: TextIO
    work_dir: Path
    build_id: str
    build_number: int
    source_version: str
    secondary_sources: Mapping[str, Path] = field(default_factory=dict)
    initiator: str = "rehearsal"
    output_artifacts: Mapping[str, Path] = field(default_factory=dict)
    reports_dir: Path | None = None
    # The project's `TimeoutInMinutes`, in real seconds: commands run in real time, never compressed.
    timeout_seconds: float = 60 * 60
    # Pipeline minutes the build waits compressed (`make bake`), and how long a pipeline minute lasts here.
    compressed_minutes: float = 0.0
    minute_seconds: float = 60.0
    image: str = ""  # the project's image: what `runtime-versions` may select


def parse_buildspec(document: str | Mapping[str, Any]) -> Buildspec:
    """Parse a buildspec given as YAML/JSON text or as an already-loaded mapping."""
    data = yaml.safe_load(document) if isinstance(document, str) else document
    if not isinstance(data, Mapping):
        raise BuildspecError("the buildspec is not a mapping: it needs at least `version: 0.2` and `phases`")
    version = str(data.get("version", ""))
    if version != "0.2":
        raise BuildspecError(
            f"buildspec version {version or '(missing)'} is not supported: use `version: 0.2`"
        )
    env = _mapping(_section(data, "env"), "env")
    notes = [text for key, text in _IGNORED_TOP_LEVEL.items() if key in data]
    shell = str(env.get("shell", "bash"))
    if shell not in ("bash", "sh", "/bin/sh", "/bin/bash"):
        notes.append(f"env.shell {shell} is not available offline: commands run in bash")
    if "git-credential-helper" in env:
        notes.append("env.git-credential-helper is ignored: the source is a snapshot, not a clone")
    cache = _mapping(_section(data, "cache"), "cache")
    notes += [f"cache.{key} is ignored offline: a local cache has no keys" for key in cache if key != "paths"]
    artifacts = _mapping(_section(data, "artifacts"), "artifacts")
    secondary = _mapping(artifacts.get("secondary-artifacts") or {}, "artifacts.secondary-artifacts")
    return Buildspec(
        version=version,
        variables={
            str(k): _scalar(v) for k, v in _mapping(env.get("variables") or {}, "env.variables").items()
        },
        parameter_store={str(k): str(v) for k, v in _mapping(env.get("parameter-store") or {}, "ps").items()},
        secrets_manager={str(k): str(v) for k, v in _mapping(env.get("secrets-manager") or {}, "sm").items()},
        exported_variables=tuple(str(v) for v in env.get("exported-variables") or ()),
        command_shell="bash",
        phases=tuple(_parse_phase(name, data, notes) for name in PHASES),
        primary_artifact=_file_set(artifacts, "artifacts") if artifacts.get("files") else None,
        secondary_artifacts={str(k): _file_set(v, f"secondary-artifacts.{k}") for k, v in secondary.items()},
        reports={
            str(k): _file_set(v, f"reports.{k}")
            for k, v in _mapping(data.get("reports") or {}, "reports").items()
        },
        notes=tuple(notes),
        cache_paths=tuple(str(p) for p in cache.get("paths") or ()),
    )


def _parse_phase(name: str, data: Mapping[str, Any], notes: list[str]) -> Phase:
    phase = _mapping(_mapping(data.get("phases") or {}, "phases").get(name) or {}, f"phases.{name}")
    on_failure = phase.get("on-failure")
    if on_failure is not None and str(on_failure).upper() not in ("ABORT", "CONTINUE"):
        raise BuildspecError(f"phases.{name}.on-failure is {on_failure}: use ABORT or CONTINUE")
    runtimes = {str(k): _scalar(v) for k, v in _mapping(phase.get("runtime-versions") or {}, "rv").items()}
    if runtimes and name != "install":
        raise BuildspecError(f"phases.{name}.runtime-versions: runtime-versions belongs to phases.install")
    if "run-as" in phase:
        notes.append(f"phases.{name}.run-as is ignored: commands run as the current user")
    return Phase(
        name=name,
        commands=tuple(str(c) for c in phase.get("commands") or ()),
        finally_commands=tuple(str(c) for c in phase.get("finally") or ()),
        on_failure=str(on_failure).upper() if on_failure is not None else None,
        runtime_versions=runtimes,
    )


def _file_set(value: Any, where: str) -> FileSet:
    spec = _mapping(value, where)
    files = spec.get("files") or ()
    if isinstance(files, str):
        files = [files]
    return FileSet(
        files=tuple(str(f) for f in files),
        base_directory=str(spec.get("base-directory") or ""),
        discard_paths=_yes(spec.get("discard-paths")),
        name=str(spec["name"]) if spec.get("name") else None,
    )


def _section(data: Mapping[str, Any], key: str) -> Any:
    value = data.get(key)
    return {} if value is None else value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BuildspecError(f"buildspec key {where} must be a mapping, not {type(value).__name__}")
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _yes(value: Any) -> bool:
    return value is True or str(value).lower() in ("yes", "true")


# ---------------------------------------------------------------- running


def run_build(spec: Buildspec, context: BuildContext) -> BuildResult:
    """Run every phase, collect artifacts and reports; never raises for a failing command."""
    log = context.log
    notes = list(spec.notes)
    for note in notes:
        _say(log, f"Note: {note}")
    environment, missing = _initial_environment(spec, context)
    if missing:
        message = "; ".join(missing)
        _say(log, message)
        return BuildResult(False, [], {}, notes, message)
    cwd = context.source_dir
    results: list[PhaseResult] = []
    succeeded = True
    skip_rest = False
    deadline = time.monotonic() + real_timeout_seconds(context)
    for phase in spec.phases:
        if skip_rest:
            break
        if not phase.commands and not phase.finally_commands and not phase.runtime_versions:
            continue
        _say(log, f"Entering phase {phase.name.upper()}")
        refusal = _select_runtimes(phase, environment, context, notes)
        if refusal is not None:
            result = refusal
        else:
            result, environment, cwd = _run_phase(phase, environment, cwd, context, deadline)
        results.append(result)
        _say(
            log,
            f"Phase complete: {phase.name.upper()} State: {'SUCCEEDED' if result.succeeded else 'FAILED'}",
        )
        if result.succeeded:
            continue
        succeeded = False
        environment["CODEBUILD_BUILD_SUCCEEDING"] = "0"
        skip_rest = _stops_after_failure(phase) or result.exit_status == TIMED_OUT
    exported = {name: environment.get(name, "") for name in spec.exported_variables}
    artifact_errors = _upload_artifacts(spec, context, build_succeeded=succeeded)
    _collect_reports(spec, context)
    message = _build_message(next((r for r in results if not r.succeeded), None), artifact_errors, context)
    return BuildResult(succeeded and not artifact_errors, results, exported, notes, message)


def _build_message(failed: PhaseResult | None, artifact_errors: list[str], context: BuildContext) -> str:
    if failed is not None and failed.exit_status == TIMED_OUT:
        return f"build timed out in phase {failed.name.upper()} after {_timeout_text(context)}"
    if failed is not None and failed.exit_status == RUNTIME_REFUSED:
        return f"phase {failed.name.upper()} failed: {failed.failed_command}"
    if failed is not None:
        return (
            f"phase {failed.name.upper()} failed: command `{failed.failed_command}` "
            f"exited with status {failed.exit_status}"
        )
    if artifact_errors:
        return "; ".join(artifact_errors)
    return "build succeeded"


def real_timeout_seconds(context: BuildContext) -> float:
    """`TimeoutInMinutes` in real seconds, with the build's compressed waits counted at full length.

    On AWS the build times out when its commands' real time plus its waits pass the timeout; offline a
    wait of W pipeline minutes lasts W x minute_seconds, so the commands get (T - W) real minutes.
    """
    waits = max(0.0, context.compressed_minutes)
    commands = max(0.0, context.timeout_seconds - waits * 60)
    return commands + min(waits * 60, context.timeout_seconds) * context.minute_seconds / 60


def _timeout_text(context: BuildContext) -> str:
    text = f"{context.timeout_seconds / 60:g} minutes (TimeoutInMinutes)"
    if context.compressed_minutes > 0:
        text += f", its {context.compressed_minutes:g}-minute bake counted at full length"
    return text


def _select_runtimes(
    phase: Phase, environment: dict[str, str], context: BuildContext, notes: list[str]
) -> PhaseResult | None:
    """Select the phase's `runtime-versions` as the image would; a refusal is the phase's failure."""
    if not phase.runtime_versions:
        return None
    try:
        selected = select_runtimes(context.image, phase.runtime_versions, path=environment.get("PATH"))
    except RuntimeVersionError as error:
        _say(context.log, str(error))
        return PhaseResult(phase.name, False, str(error), RUNTIME_REFUSED)
    for runtime in selected:
        _say(context.log, f"Selecting {runtime.name} runtime version {runtime.version} of {context.image}")
        if runtime.bin_dir is not None:
            environment["PATH"] = os.pathsep.join((str(runtime.bin_dir), environment.get("PATH", "")))
        if runtime.note is not None:
            notes.append(f"runtime-versions {runtime.note}")
            _say(context.log, f"Note: runtime-versions {runtime.note}")
    return None


def _stops_after_failure(phase: Phase) -> bool:
    if phase.on_failure == "CONTINUE":
        return False
    if phase.on_failure == "ABORT":
        return True
    # CodeBuild's default transitions: only a failed BUILD phase still goes on to POST_BUILD.
    return phase.name != "build"


def _initial_environment(spec: Buildspec, context: BuildContext) -> tuple[dict[str, str], list[str]]:
    environment = dict(context.base_environment)
    environment.update(spec.variables)
    missing: list[str] = []
    for kind, entries in (
        ("parameter-store", spec.parameter_store),
        ("secrets-manager", spec.secrets_manager),
    ):
        for name, reference in entries.items():
            if name in context.base_environment:
                environment[name] = context.base_environment[name]
                _say(context.log, f"Note: env.{kind} {name} taken from this shell's environment")
            else:
                missing.append(
                    f"env.{kind} {name} ({reference}) cannot be read offline: "
                    f"export {name} before the release to stand in for it"
                )
    environment.update(context.overrides)
    environment.update(_codebuild_variables(context))
    return environment, missing


def _codebuild_variables(context: BuildContext) -> dict[str, str]:
    variables = {
        "CODEBUILD_SRC_DIR": str(context.source_dir),
        "CODEBUILD_BUILD_ID": context.build_id,
        "CODEBUILD_BUILD_NUMBER": str(context.build_number),
        "CODEBUILD_RESOLVED_SOURCE_VERSION": context.source_version,
        "CODEBUILD_SOURCE_VERSION": context.source_version,
        "CODEBUILD_INITIATOR": context.initiator,
        "CODEBUILD_BUILD_SUCCEEDING": "1",
        "CODEBUILD_LOCAL_BUILD": "true",
    }
    for identifier, path in context.secondary_sources.items():
        variables[f"CODEBUILD_SRC_DIR_{identifier}"] = str(path)
    return variables


def _run_phase(
    phase: Phase, environment: dict[str, str], cwd: Path, context: BuildContext, deadline: float
) -> tuple[PhaseResult, dict[str, str], Path]:
    context.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=context.work_dir, prefix=f"{phase.name}-") as scratch:
        script = Path(scratch, "phase.sh")
        env_dump = Path(scratch, "env")
        status_file = Path(scratch, "status")
        script.write_text(
            phase_script(phase.commands, phase.finally_commands, env_dump, status_file), encoding="utf-8"
        )
        # Runs the buildspec's commands, which is this module's job (B603).
        with subprocess.Popen(  # nosec B603
            [_BASH, str(script)],
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a timeout stops the phase's whole process group
        ) as process:
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), _stop_group, (process,))
            timer.start()
            try:
                for line in process.stdout or ():
                    context.log.write(line.decode("utf-8", "replace"))
            finally:
                timer.cancel()
        context.log.flush()
        if time.monotonic() >= deadline and process.returncode != 0:
            _say(context.log, f"Build timed out in phase {phase.name.upper()}")
            return PhaseResult(phase.name, False, "(build timeout)", TIMED_OUT), environment, cwd
        new_environment, new_cwd = read_env_dump(env_dump, fallback=(environment, cwd))
        failed_command, exit_status = read_status(status_file, process.returncode)
    if failed_command is not None:
        return PhaseResult(phase.name, False, failed_command, exit_status), new_environment, new_cwd
    return PhaseResult(phase.name, True), new_environment, new_cwd


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# ---------------------------------------------------------------- artifacts and reports


def _upload_artifacts(spec: Buildspec, context: BuildContext, *, build_succeeded: bool) -> list[str]:
    """Copy each output artifact's files; an artifact that matches nothing fails a good build."""
    errors: list[str] = []
    primary_used = False
    for name, destination in context.output_artifacts.items():
        file_set = spec.secondary_artifacts.get(name)
        if file_set is None and spec.primary_artifact is not None and not primary_used:
            file_set, primary_used = spec.primary_artifact, True
        if file_set is None:
            errors.append(f"output artifact {name} has no definition in the buildspec's artifacts")
            continue
        destination.mkdir(parents=True, exist_ok=True)
        copied = copy_matching_files(
            context.source_dir,
            file_set.base_directory,
            file_set.files,
            destination,
            discard_paths=file_set.discard_paths,
        )
        if copied == 0 and build_succeeded:
            errors.append(
                f"no matching artifact paths found for {name} "
                f"(files {list(file_set.files)} under '{file_set.base_directory or '.'}')"
            )
    for error in errors:
        _say(context.log, f"UPLOAD_ARTIFACTS: {error}")
    return errors


def _collect_reports(spec: Buildspec, context: BuildContext) -> None:
    if context.reports_dir is None:
        return
    for group, file_set in spec.reports.items():
        destination = context.reports_dir / group.rsplit("/", 1)[-1]
        copied = copy_matching_files(
            context.source_dir,
            file_set.base_directory,
            file_set.files,
            destination,
            discard_paths=file_set.discard_paths,
        )
        _say(context.log, f"Report group {group}: {copied} file(s) collected")


def _say(log: TextIO, line: str) -> None:
    log.write(f"[Container] {line}\n")
    log.flush()
