"""`make deploy` deploys what the branch holds, or nothing.

The pipeline's first execution starts when the pipeline is created and self-mutates to the
`cdk.json`, `pipeline/` and `buildspecs/` of the configured branch: a deploy from local files that
differ would be replaced minutes later by what was pushed (see ADR 0012). So before `cdk deploy`,
this refuses the shipped example values and any difference from the remote branch, in one line
that says how to fix it. Run as `python -m pipeline.deploy_guard`.
"""

from __future__ import annotations

import json

# git runs with fixed argument lists and no shell.
import subprocess  # nosec B404
import sys
from pathlib import Path

from pipeline.config import ConfigError, PipelineConfig

ROOT = Path(__file__).resolve().parent.parent
# What the Build synthesizes the pipeline from (buildspecs are embedded in it).
GUARDED_PATHS = ("cdk.json", "pipeline", "buildspecs")


class GuardError(Exception):
    """The local checkout is not what the pipeline will deploy; the message says how to fix it."""


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Fixed git arguments and no shell; git comes from PATH, as the developer runs it.
    return subprocess.run(  # nosec B603 B607
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )


def remote_of(repo: Path, branch: str) -> str:
    """The remote the branch tracks, else `origin`."""
    configured = _git(repo, "config", "--get", f"branch.{branch}.remote").stdout.strip()
    return configured or "origin"


def differing_paths(repo: Path, *, branch: str, remote: str) -> list[str]:
    """Guarded files that differ from `<remote>/<branch>` (committed, staged, unstaged or untracked)."""
    fetched = _git(repo, "fetch", "--quiet", remote, branch)
    if fetched.returncode != 0:
        raise GuardError(
            f"cannot read branch {branch} from remote {remote}: push it first "
            f"(git push -u {remote} {branch}), then run make deploy again"
        )
    changed = _git(repo, "diff", "--name-only", "FETCH_HEAD", "--", *GUARDED_PATHS)
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "--", *GUARDED_PATHS)
    if changed.returncode != 0 or untracked.returncode != 0:
        raise GuardError(f"git cannot compare this checkout with {remote}/{branch}: {changed.stderr.strip()}")
    return sorted(set(changed.stdout.split()) | set(untracked.stdout.split()))


def check_matches_remote(repo: Path, *, branch: str) -> None:
    """Raise GuardError unless the guarded paths equal the remote branch's."""
    remote = remote_of(repo, branch)
    paths = differing_paths(repo, branch=branch, remote=remote)
    if paths:
        more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
        raise GuardError(
            f"{paths[0]}{more} differ from {remote}/{branch}, which the pipeline deploys itself from: "
            f"commit and push them (git push {remote} {branch}), then run make deploy again"
        )


def main(repo: Path = ROOT) -> int:
    try:
        context = json.loads((repo / "cdk.json").read_text(encoding="utf-8"))["context"]
        config = PipelineConfig.from_context(context)
        config.check_deployable()
        check_matches_remote(repo, branch=config.branch)
    except ConfigError as error:
        print(f"cdk.json: {error}", file=sys.stderr)
        return 2
    except GuardError as error:
        print(f"make deploy: {error}", file=sys.stderr)
        return 2
    print(f"The local pipeline files match {remote_of(repo, config.branch)}/{config.branch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
