"""`rehearsal release|release-remote|approve|reject|status`: the offline release and its controls.

`release` rehearses a release of HEAD (or of a pushed commit, from the `rehearsal` remote's hook)
through the synthesized pipeline; it exits 0 only when the release reached production.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal.base.clock import REAL_TIME, TimeScale
from rehearsal.base.errors import UserError
from rehearsal.base.layout import StateLayout
from rehearsal.cli.diagram import run_diagram_of
from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.release.approval_inbox import MODES, ApprovalGate, ApprovalInbox, approver_identity
from rehearsal.release.deploy_port import Deployer
from rehearsal.release.pipeline_model import load_pipeline
from rehearsal.release.recovery import recover_when_idle
from rehearsal.release.run_record import latest_summary, render_summary
from rehearsal.release.runner import ReleaseOptions, ReleaseRunner
from rehearsal.release.source import changed_paths, configured_approver, git, resolve_revision

REMOTE_NAME = "rehearsal"
DEFAULT_BRANCH = "main"
# The cdk.json context key pipeline/config.py reads the releasing branch from.
BRANCH_CONTEXT_KEY = "branch"

# How a release gets its deployer: `make release` uses the local one; tests inject a fake.
DeployerFactory = Callable[[Path, TimeScale], Deployer]


@dataclass(frozen=True, kw_only=True)
class ReleaseRequest:
    """What one release is asked to do, from `rehearsal release` or from a push to the remote."""

    repo: Path
    commit: str = "HEAD"
    git_dir: Path | None = None
    branch: str = ""
    allow_dirty: bool = False
    approve: str | None = None  # else $APPROVE, else prompt (or wait without a terminal)
    time_scale: str | None = None  # else $TIME_SCALE, else 1
    quiet: bool = False
    diagram: bool = False  # also print the run as the pipeline diagram with each action's state


def register(commands: Any, *, deployer_factory: DeployerFactory = LocalDeployer) -> None:
    release = commands.add_parser("release", help="rehearse a release of HEAD offline")
    release.add_argument(
        "--allow-dirty", action="store_true", help="release HEAD despite uncommitted changes ($ALLOW_DIRTY=1)"
    )
    release.add_argument(
        "--approve",
        choices=MODES,
        default=None,
        help="answer the manual approval (default: $APPROVE, else prompt)",
    )
    release.add_argument(
        "--time-scale",
        default=None,
        metavar="SECONDS",
        help="real seconds per pipeline minute for canaries and bakes (default 1; $TIME_SCALE)",
    )
    release.add_argument("--quiet", action="store_true", help="no progress output, only the exit status")
    release.add_argument(
        "--diagram", action="store_true", help="end with the run as a Mermaid diagram ($DIAGRAM=1)"
    )
    release.add_argument("--repo", type=Path, default=None, help=argparse.SUPPRESS)
    release.add_argument("--commit", default="HEAD", help=argparse.SUPPRESS)
    release.add_argument("--git-dir", type=Path, default=None, help=argparse.SUPPRESS)
    release.add_argument("--branch", default="", help=argparse.SUPPRESS)
    release.set_defaults(run=functools.partial(_release_command, deployer_factory=deployer_factory))

    remote = commands.add_parser(
        "release-remote", help="add git remote 'rehearsal': a push to the branch releases"
    )
    remote.add_argument("--repo", type=Path, default=None, help=argparse.SUPPRESS)
    remote.set_defaults(run=run_release_remote)

    trigger = commands.add_parser("release-trigger", help=argparse.SUPPRESS)
    trigger.add_argument("--repo", type=Path, required=True)
    trigger.add_argument("--git-dir", type=Path, required=True)
    trigger.set_defaults(run=functools.partial(run_release_trigger, deployer_factory=deployer_factory))

    approve = commands.add_parser("approve", help="approve the release waiting for a release manager")
    approve.add_argument("--comment", default="approved")
    approve.add_argument("--repo", type=Path, default=None, help=argparse.SUPPRESS)
    approve.set_defaults(run=lambda args: _decide(args, approved=True, comment=args.comment))

    reject = commands.add_parser("reject", help="reject the release waiting for a release manager")
    reject.add_argument("--reason", required=True)
    reject.add_argument("--repo", type=Path, default=None, help=argparse.SUPPRESS)
    reject.set_defaults(run=lambda args: _decide(args, approved=False, comment=args.reason))

    status = commands.add_parser("status", help="print the latest rehearsal run")
    status.add_argument("--json", action="store_true", help="print summary.json as it is")
    status.add_argument(
        "--diagram",
        action="store_true",
        help="print the run as a Mermaid diagram of the pipeline ($DIAGRAM=1)",
    )
    status.add_argument("--repo", type=Path, default=None, help=argparse.SUPPRESS)
    status.set_defaults(run=run_status)


def _repo(args: argparse.Namespace) -> Path:
    repo: Path = (args.repo or Path.cwd()).resolve()
    if not (repo / ".git").exists():
        raise UserError(f"{repo} is not a git repository: run the rehearsal from the repository's root")
    return repo


def _approval_mode(request: ReleaseRequest) -> str:
    mode = request.approve or os.environ.get("APPROVE") or ("prompt" if sys.stdin.isatty() else "wait")
    if mode not in MODES:
        raise UserError(f"APPROVE={mode} is unknown: use APPROVE=auto, APPROVE=reject or leave it unset")
    return str(mode)


def _time_scale(request: ReleaseRequest) -> TimeScale:
    raw = request.time_scale if request.time_scale is not None else os.environ.get("TIME_SCALE", "1")
    try:
        value = float(raw)
    except ValueError:
        raise UserError(
            f"time scale {raw!r} is not a number: give seconds per pipeline minute, e.g. 2"
        ) from None
    if value <= 0:
        raise UserError(f"time scale {value} must be above 0 seconds per pipeline minute")
    return TimeScale(seconds_per_minute=value)


def _release_command(args: argparse.Namespace, *, deployer_factory: DeployerFactory) -> int:
    request = ReleaseRequest(
        repo=_repo(args),
        commit=args.commit,
        git_dir=args.git_dir,
        branch=args.branch,
        allow_dirty=args.allow_dirty,
        approve=args.approve,
        time_scale=args.time_scale,
        quiet=args.quiet,
        diagram=args.diagram or _env_flag("DIAGRAM"),
    )
    return run_release(request, deployer_factory=deployer_factory)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def run_release(request: ReleaseRequest, *, deployer_factory: DeployerFactory) -> int:
    """Compose one release (runner, deployer, approval gate) and run it: 0 when production was reached."""
    repo = request.repo
    state_dir = StateLayout.of_repo(repo).root
    time_scale = _time_scale(request)
    mode = _approval_mode(request)
    revision = resolve_revision(repo, request.commit, git_dir=request.git_dir, branch=request.branch)
    out = None if request.quiet else sys.stdout
    gate = ApprovalGate(
        ApprovalInbox(state_dir),
        mode=mode,
        approver=approver_identity(configured=configured_approver(repo)),
        reason=os.environ.get("REASON", ""),
        stdin=sys.stdin if mode == "prompt" else None,
        out=out,
        time_scale=time_scale,
    )
    runner = ReleaseRunner(
        ReleaseOptions(
            repo=repo,
            revision=revision,
            state_dir=state_dir,
            allow_dirty=request.allow_dirty or _env_flag("ALLOW_DIRTY"),
            out=out,
        ),
        deployer=deployer_factory(state_dir, time_scale),
        approvals=gate,
    )
    result = runner.run()
    if request.diagram and out is not None:
        out.write("\n" + run_diagram_of(repo, result.summary))
    return 0 if result.succeeded else 1


def _decide(args: argparse.Namespace, *, approved: bool, comment: str) -> int:
    repo = _repo(args)
    who = approver_identity(configured=configured_approver(repo))
    request = ApprovalInbox(StateLayout.of_repo(repo).root).decide(approved=approved, by=who, comment=comment)
    verb = "Approved" if approved else "Rejected"
    action = f"{request.stage}/{request.action}"
    print(f"{verb} {action} of release {request.run_id} ({request.commit[:12]}) as {who}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    repo = _repo(args)
    _recover_interrupted(repo)
    summary = latest_summary(StateLayout.of_repo(repo).root)
    if summary is None:
        raise UserError("no rehearsal has run yet: run `make release`")
    if args.diagram or _env_flag("DIAGRAM"):
        print(run_diagram_of(repo, summary), end="")
        return 0
    print(
        json.dumps(summary, indent=2) if args.json else render_summary(summary), end="\n" if args.json else ""
    )
    return 0


def _recover_interrupted(repo: Path) -> None:
    """A release killed mid-way, found while none runs: put its environments back first (ADR 0055)."""
    state_dir = StateLayout.of_repo(repo).root
    line = recover_when_idle(state_dir, LocalDeployer(state_dir, REAL_TIME))
    if line is not None:
        print(line)


# ---------------------------------------------------------------- the `rehearsal` remote


def configured_branch(repo: Path) -> str:
    """The releasing branch: the synthesized push trigger decides; cdk.json's context names it too."""
    cdk_json = repo / "cdk.json"
    if cdk_json.is_file():
        context = json.loads(cdk_json.read_text(encoding="utf-8")).get("context") or {}
        if context.get(BRANCH_CONTEXT_KEY):
            return str(context[BRANCH_CONTEXT_KEY])
    return DEFAULT_BRANCH


def run_release_remote(args: argparse.Namespace) -> int:
    repo = _repo(args)
    remote = StateLayout.of_repo(repo).remote
    if not (remote / "HEAD").is_file():
        remote.parent.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "--quiet", "--bare", str(remote))
    hook = remote / "hooks" / "post-receive"
    hook.write_text(_hook_script(repo, remote), encoding="utf-8")
    hook.chmod(0o755)
    remotes = git(repo, "remote").split()
    if REMOTE_NAME in remotes:
        git(repo, "remote", "set-url", REMOTE_NAME, str(remote))
    else:
        git(repo, "remote", "add", REMOTE_NAME, str(remote))
    branch = configured_branch(repo)
    print(f"Remote '{REMOTE_NAME}' is {remote}")
    print(f"  git push {REMOTE_NAME} {branch}   starts a release (APPROVE=auto git push ... approves it)")
    print("  make release-status / make approve / make reject REASON=...   from another shell")
    return 0


def _hook_script(repo: Path, remote: Path) -> str:
    python = shlex.quote(sys.executable)
    package_root = shlex.quote(str(Path(__file__).resolve().parents[2]))
    return (
        "#!/bin/sh\n"
        "# Installed by `make release-remote`: hands each pushed ref to the rehearsal, which releases\n"
        "# pushes to the pipeline's branch only (the V2 push trigger's filter).\n"
        f"cd {shlex.quote(str(repo))} || exit 1\n"
        "unset GIT_DIR GIT_QUARANTINE_PATH\n"
        f"export PYTHONPATH={package_root}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        f"exec {python} -m rehearsal release-trigger --repo {shlex.quote(str(repo))} "
        f"--git-dir {shlex.quote(str(remote))}\n"
    )


def run_release_trigger(args: argparse.Namespace, *, deployer_factory: DeployerFactory) -> int:
    """post-receive: one line `old new ref` per pushed ref on stdin; release the ones the trigger accepts."""
    repo: Path = args.repo.resolve()
    status = 0
    for line in sys.stdin.read().splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("refs/heads/") or set(parts[1]) == {"0"}:
            continue
        old, new, ref = parts
        branch = ref.removeprefix("refs/heads/")
        if not _push_starts_release(repo, args.git_dir, branch, old, new):
            print(f"rehearsal: push to {branch} does not match the pipeline's trigger: no release")
            continue
        print(f"rehearsal: push to {branch} ({new[:7]}) starts a release")
        request = ReleaseRequest(repo=repo, commit=new, git_dir=args.git_dir, branch=branch, allow_dirty=True)
        status = max(status, run_release(request, deployer_factory=deployer_factory))
    return status


def _push_starts_release(repo: Path, git_dir: Path, branch: str, old: str, new: str) -> bool:
    for assembly in (StateLayout.of_repo(repo).pipeline_assembly, repo / "cdk.out"):
        if (assembly / "manifest.json").is_file():
            accepted = load_pipeline(assembly).accepts_push(
                branch, changed_paths(repo, old, new, git_dir=git_dir)
            )
            if accepted is not None:
                return accepted
    return branch == configured_branch(repo)
