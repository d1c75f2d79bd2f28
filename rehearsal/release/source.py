"""The release's source: which commit, whether the tree is clean, and a snapshot of it (`git archive`).

Git is used read-only: `rev-parse`, `status`, `archive`, `config`, `diff --name-only`.
"""

from __future__ import annotations

import io
import shutil

# Runs git with argument lists, never a shell (B404).
import subprocess  # nosec B404
import tarfile
from dataclasses import dataclass
from pathlib import Path

from rehearsal.base.errors import UserError


def _git_executable() -> str:
    git = shutil.which("git")
    if git is None:
        raise UserError("git is not installed: install git to run a release")
    return git


def git(repo: Path, *arguments: str, git_dir: Path | None = None) -> str:
    """Run a read-only git command and return its stdout; a failure becomes a UserError."""
    command = [_git_executable()]
    if git_dir is not None:
        command += ["--git-dir", str(git_dir)]
    # Git from PATH with a fixed argument list, no shell (B603).
    completed = subprocess.run(  # nosec B603
        [*command, *arguments], cwd=repo, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        detail = completed.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise UserError(f"git {' '.join(arguments)} failed in {repo}: {detail[0]}")
    return completed.stdout


@dataclass(frozen=True)
class SourceRevision:
    repo: Path  # the working repository (where `.rehearsal/` lives)
    git_dir: Path | None  # a bare remote to read the commit from, for pushes to `rehearsal`
    commit: str
    branch: str
    message: str
    author: str
    author_date: str = ""  # ISO-8601, as the CodeStarSourceConnection action's `AuthorDate`

    @property
    def short(self) -> str:
        return self.commit[:7]


def resolve_revision(
    repo: Path, revision: str = "HEAD", *, git_dir: Path | None = None, branch: str = ""
) -> SourceRevision:
    commit = git(repo, "rev-parse", "--verify", f"{revision}^{{commit}}", git_dir=git_dir).strip()
    if not branch:
        branch = git(repo, "rev-parse", "--abbrev-ref", "HEAD", git_dir=git_dir).strip()
    message = git(repo, "log", "-1", "--format=%s", commit, git_dir=git_dir).strip()
    author = git(repo, "log", "-1", "--format=%an <%ae>", commit, git_dir=git_dir).strip()
    author_date = git(repo, "log", "-1", "--format=%aI", commit, git_dir=git_dir).strip()
    return SourceRevision(repo, git_dir, commit, branch, message, author, author_date)


def configured_approver(repo: Path) -> str | None:
    """The local identity mapped to a release manager: `git config rehearsal.approver <ARN>`."""
    try:
        return git(repo, "config", "--get", "rehearsal.approver").strip() or None
    except UserError:  # not configured: git config exits 1
        return None


def require_clean_tree(repo: Path) -> None:
    """Refuse uncommitted changes: the release is of a commit, and they would not be part of it."""
    changes = git(repo, "status", "--porcelain").splitlines()
    if changes:
        raise UserError(
            f"the working tree has {len(changes)} uncommitted change(s) that a release of HEAD leaves out: "
            "commit them, or run `ALLOW_DIRTY=1 make release` to release HEAD anyway"
        )


def snapshot(revision: SourceRevision, destination: Path) -> None:
    """Extract the commit's tree into `destination`, like the zip a CodePipeline source action outputs."""
    # Git from PATH with a fixed argument list, no shell (B603).
    completed = subprocess.run(  # nosec B603
        [
            _git_executable(),
            *(["--git-dir", str(revision.git_dir)] if revision.git_dir else []),
            "archive",
            "--format=tar",
            revision.commit,
        ],
        cwd=revision.repo,
        capture_output=True,
        check=False,
    )
    if completed.returncode != 0:
        raise UserError(
            f"git archive {revision.short} failed: {completed.stderr.decode(errors='replace').strip()}"
        )
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(completed.stdout)) as archive:
        try:
            archive.extractall(destination, filter="data")
        except tarfile.FilterError as error:
            raise UserError(
                f"commit {revision.short} cannot be snapshotted safely ({error}): "
                "remove the link from the repository or make it relative inside it"
            ) from None


def changed_paths(repo: Path, old: str, new: str, *, git_dir: Path | None = None) -> list[str] | None:
    """Files a push changed; None for a new branch (all files count as changed)."""
    if set(old) == {"0"}:
        return None
    return git(repo, "diff", "--name-only", old, new, git_dir=git_dir).split()


def git_user(repo: Path) -> str:
    """`Name <email>` from git config, or an empty string when not configured."""
    try:
        name = git(repo, "config", "user.name").strip()
    except UserError:
        return ""
    try:
        email = git(repo, "config", "user.email").strip()
    except UserError:
        email = ""
    return f"{name} <{email}>" if email else name
