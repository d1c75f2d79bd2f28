"""Manual approval offline: a file-based inbox under `.rehearsal/approvals/`, a prompt, or a fixed answer.

The waiting release writes `pending.json`; `make approve` / `make reject REASON=...` (from another
shell) write `decision-<token>.json` for that very request, so a late answer never approves a later
release. Attached to a terminal, the release also prompts; `APPROVE=auto|reject` answers unattended.
"""

from __future__ import annotations

import json
import os
import select
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from rehearsal.base.clock import timestamp
from rehearsal.base.errors import UserError
from rehearsal.base.layout import StateLayout

MODES = ("auto", "reject", "prompt", "wait")


@dataclass(frozen=True)
class ApprovalRequest:
    token: str
    run_id: str
    stage: str
    action: str
    commit: str
    custom_data: str = ""
    review_url: str = ""


@dataclass(frozen=True)
class ApprovalDecision:
    approved: bool
    by: str
    at: str
    comment: str
    via: str  # "APPROVE=auto", "prompt", "make approve", ...


class ApprovalInbox:
    def __init__(self, state_dir: Path) -> None:
        self.folder = StateLayout(root=state_dir).approvals

    @property
    def pending_path(self) -> Path:
        return self.folder / "pending.json"

    def open(
        self, *, run_id: str, stage: str, action: str, commit: str, custom_data: str, review_url: str
    ) -> ApprovalRequest:
        request = ApprovalRequest(
            uuid.uuid4().hex[:12], run_id, stage, action, commit, custom_data, review_url
        )
        _write_json(self.pending_path, asdict(request))
        return request

    def pending(self) -> ApprovalRequest | None:
        if not self.pending_path.is_file():
            return None
        return ApprovalRequest(**json.loads(self.pending_path.read_text(encoding="utf-8")))

    def decide(self, *, approved: bool, by: str, comment: str) -> ApprovalRequest:
        """Answer the waiting request (the `approve`/`reject` commands)."""
        request = self.pending()
        if request is None:
            raise UserError("no release is waiting for approval: start one with `make release`")
        decision = ApprovalDecision(
            approved, by, timestamp(), comment, "make approve" if approved else "make reject"
        )
        _write_json(self.folder / f"decision-{request.token}.json", asdict(decision))
        return request

    def take_decision(self, request: ApprovalRequest) -> ApprovalDecision | None:
        path = self.folder / f"decision-{request.token}.json"
        if not path.is_file():
            return None
        decision = ApprovalDecision(**json.loads(path.read_text(encoding="utf-8")))
        path.unlink()
        return decision

    def close(self, request: ApprovalRequest) -> None:
        current = self.pending()
        if current is not None and current.token == request.token:
            self.pending_path.unlink()


class ApprovalGate:
    """Waits for one decision per Manual approval action, by the mode the release was started with."""

    def __init__(
        self,
        inbox: ApprovalInbox,
        *,
        mode: str,
        release_manager: str,
        reason: str = "",
        stdin: TextIO | None = None,
        out: TextIO | None = None,
        poll_seconds: float = 0.2,
        timeout_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise UserError(f"approval mode {mode!r} is unknown: use one of {', '.join(MODES)}")
        self.inbox = inbox
        self.mode = mode
        self.release_manager = release_manager
        self.reason = reason
        self.stdin = stdin
        self.out = out
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.clock = clock

    def wait(self, request: ApprovalRequest) -> ApprovalDecision:
        if self.mode == "auto":
            return ApprovalDecision(
                True, self.release_manager, timestamp(), "approved automatically", "APPROVE=auto"
            )
        if self.mode == "reject":
            comment = self.reason or "rejected automatically"
            return ApprovalDecision(False, self.release_manager, timestamp(), comment, "APPROVE=reject")
        prompting = self.mode == "prompt" and self.stdin is not None
        if self.out is not None:
            self.out.write(_instructions(request, prompting))
            self.out.flush()
        deadline = None if self.timeout_seconds is None else self.clock() + self.timeout_seconds
        try:
            while True:
                decision = self.inbox.take_decision(request)
                if decision is not None:
                    return decision
                if prompting and self._stdin_ready():
                    return self._read_prompt()
                if deadline is not None and self.clock() > deadline:
                    return ApprovalDecision(False, "rehearsal", timestamp(), "approval timed out", "timeout")
                if not prompting:
                    time.sleep(self.poll_seconds)
        finally:
            self.inbox.close(request)

    def _stdin_ready(self) -> bool:
        if self.stdin is None:
            return False
        readable, _, _ = select.select([self.stdin], [], [], self.poll_seconds)
        return bool(readable)

    def _read_prompt(self) -> ApprovalDecision:
        answer = self.stdin.readline().strip() if self.stdin is not None else ""
        if answer.lower() in ("y", "yes"):
            return ApprovalDecision(
                True, self.release_manager, timestamp(), "approved at the prompt", "prompt"
            )
        return ApprovalDecision(
            False, self.release_manager, timestamp(), answer or "rejected at the prompt", "prompt"
        )


def _instructions(request: ApprovalRequest, prompting: bool) -> str:
    lines = [f"  Approval needed: {request.stage}/{request.action} for commit {request.commit[:12]}"]
    if request.custom_data:
        lines.append(f"    {request.custom_data}")
    if request.review_url:
        lines.append(f"    review: {request.review_url}")
    lines.append("    from another shell: make approve COMMENT='...'  or  make reject REASON='...'")
    if prompting:
        lines.append("    or here: type y to approve, or a reason to reject, then Enter")
    return "\n".join(lines) + "\n"


def release_manager_name(environ: dict[str, str] | None = None, git_user: str | None = None) -> str:
    """Who answers: the git user when known, else $USER."""
    if git_user:
        return git_user
    environ = dict(os.environ) if environ is None else environ
    return environ.get("USER") or environ.get("LOGNAME") or "unknown"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
