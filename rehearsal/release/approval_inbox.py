"""Manual approval offline: a file-based inbox under `.rehearsal/approvals/`, a prompt, or a fixed answer.

The waiting release writes `pending.json`; `make approve` / `make reject REASON=...` (from another
shell) write `decision-<token>.json` for that very request, so a late answer never approves a later
release. Attached to a terminal, the release also prompts; `APPROVE=auto|reject` answers unattended.

As on AWS, only a principal the pipeline grants `codepipeline:PutApprovalResult` on the action may
answer (the release-manager role, or an identity its trust policy names): offline that identity is
`APPROVER=<ARN>` (else `git config rehearsal.approver`). An answer when no release is waiting, or by
anyone else, changes nothing. An unanswered request fails after the action's timeout (AWS: 7 days),
compressed by the release's TimeScale.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from rehearsal.base.clock import TimeScale, timestamp
from rehearsal.base.errors import UserError
from rehearsal.base.layout import StateLayout

MODES = ("auto", "reject", "prompt", "wait")
# "If ... no approval response is received within seven days of the pipeline stopping for the
# approval action, the pipeline status changes to Failed" (CodePipeline User Guide, ADR 0026).
DEFAULT_APPROVAL_TIMEOUT_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class ApprovalRequest:
    token: str
    run_id: str
    stage: str
    action: str
    commit: str
    custom_data: str = ""
    review_url: str = ""
    approvers: tuple[str, ...] = ()  # principals the pipeline grants PutApprovalResult on this action
    timeout_minutes: int = DEFAULT_APPROVAL_TIMEOUT_MINUTES

    @property
    def where(self) -> str:
        return f"{self.stage}/{self.action}"


def refusal(request: ApprovalRequest, identity: str | None) -> str | None:
    """Why `identity` may not answer `request` (None: it may), in one line with the fix."""
    if not request.approvers:
        return (
            f"the pipeline grants no one codepipeline:PutApprovalResult on {request.where}: "
            "no release manager can answer it; grant a role in the pipeline stack"
        )
    granted = ", ".join(request.approvers)
    if identity is None:
        return (
            f"no approver identity: set APPROVER to a principal the pipeline grants on {request.where} "
            f"({granted})"
        )
    if identity in request.approvers or _assumed_role_of(identity) in request.approvers:
        return None
    return (
        f"{identity} may not answer {request.where}: the pipeline grants codepipeline:PutApprovalResult "
        f"on it only to {granted}"
    )


def _assumed_role_of(identity: str) -> str | None:
    """`arn:aws:sts::A:assumed-role/NAME/session` acts as `arn:aws:iam::A:role/NAME`."""
    head, _, resource = identity.partition(":assumed-role/")
    if not resource or not head.startswith("arn:") or ":sts::" not in head:
        return None
    partition_and_account = head.replace(":sts::", ":iam::")
    return f"{partition_and_account}:role/{resource.split('/')[0]}"


@dataclass(frozen=True)
class ApprovalDecision:
    approved: bool
    by: str
    at: str
    comment: str
    via: str  # "APPROVE=auto", "prompt", "make approve", ...


class ApprovalInbox:
    def __init__(self, state_dir: Path) -> None:
        layout = StateLayout(root=state_dir)
        self.folder = layout.approvals
        self.release_lock = layout.lock

    @property
    def pending_path(self) -> Path:
        return self.folder / "pending.json"

    def open(
        self,
        *,
        run_id: str,
        stage: str,
        action: str,
        commit: str,
        custom_data: str,
        review_url: str,
        approvers: tuple[str, ...] = (),
        timeout_minutes: int = DEFAULT_APPROVAL_TIMEOUT_MINUTES,
    ) -> ApprovalRequest:
        request = ApprovalRequest(
            uuid.uuid4().hex[:12],
            run_id,
            stage,
            action,
            commit,
            custom_data,
            review_url,
            approvers,
            timeout_minutes,
        )
        _write_json(self.pending_path, asdict(request))
        return request

    def pending(self) -> ApprovalRequest | None:
        if not self.pending_path.is_file():
            return None
        document = json.loads(self.pending_path.read_text(encoding="utf-8"))
        document["approvers"] = tuple(document.get("approvers") or ())
        return ApprovalRequest(**document)

    def decide(self, *, approved: bool, by: str | None, comment: str) -> ApprovalRequest:
        """Answer the waiting request (the `approve`/`reject` commands) as `by`; refused, nothing changes,
        when no release is waiting or the pipeline does not grant `by` the answer."""
        request = self.pending()
        if request is not None and not self._release_running():
            # Left by a release that ended without closing it (killed): nobody waits for an answer.
            self.pending_path.unlink(missing_ok=True)
            request = None
        if request is None:
            raise UserError(
                "no release is waiting for approval: nothing was changed (start one with `make release`)"
            )
        refused = refusal(request, by)
        if refused is not None or by is None:
            raise UserError(f"{refused}: nothing was changed")
        decision = ApprovalDecision(
            approved, by, timestamp(), comment, "make approve" if approved else "make reject"
        )
        _write_json(self.folder / f"decision-{request.token}.json", asdict(decision))
        return request

    def _release_running(self) -> bool:
        """A release holds `release.lock` while it runs (flock, released when its process ends)."""
        if not self.release_lock.is_file():
            return False
        with self.release_lock.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock, fcntl.LOCK_UN)
            return False

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
    """Waits for one decision per Manual approval action, by the mode the release was started with.

    `approver` is the identity this shell answers as (APPROVER); None lets an unattended answer or a
    prompt stand in as the first principal the pipeline grants (the executor records that stand-in).
    """

    def __init__(
        self,
        inbox: ApprovalInbox,
        *,
        mode: str,
        approver: str | None = None,
        reason: str = "",
        stdin: TextIO | None = None,
        out: TextIO | None = None,
        poll_seconds: float = 0.2,
        time_scale: TimeScale | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise UserError(f"approval mode {mode!r} is unknown: use one of {', '.join(MODES)}")
        self.inbox = inbox
        self.mode = mode
        self.approver = approver
        self.reason = reason
        self.stdin = stdin
        self.out = out
        self.poll_seconds = poll_seconds
        self.time_scale = time_scale or TimeScale(seconds_per_minute=1.0)
        self.clock = clock

    def answering_identity(self, request: ApprovalRequest) -> str | None:
        """Who an answer given here (APPROVE=..., the prompt) comes from."""
        if self.approver is not None:
            return self.approver
        return request.approvers[0] if request.approvers else None

    def wait(self, request: ApprovalRequest) -> ApprovalDecision:
        try:
            return self._wait(request)
        finally:
            self.inbox.close(request)

    def _wait(self, request: ApprovalRequest) -> ApprovalDecision:
        identity = self.answering_identity(request)
        if self.mode in ("auto", "reject"):
            refused = refusal(request, identity)
            via = f"APPROVE={self.mode}"
            if refused is not None or identity is None:
                return ApprovalDecision(False, identity or "nobody", timestamp(), f"refused: {refused}", via)
            if self.mode == "auto":
                return ApprovalDecision(True, identity, timestamp(), "approved automatically", via)
            return ApprovalDecision(
                False, identity, timestamp(), self.reason or "rejected automatically", via
            )
        prompting = self.mode == "prompt" and self.stdin is not None
        if self.out is not None:
            self.out.write(_instructions(request, prompting))
            self.out.flush()
        deadline = self.clock() + self.time_scale.real_seconds_for_minutes(request.timeout_minutes)
        while True:
            decision = self.inbox.take_decision(request)
            if decision is not None:
                return decision
            if prompting and self._stdin_ready():
                return self._read_prompt(request, identity)
            if self.clock() > deadline:
                return ApprovalDecision(
                    False,
                    "CodePipeline",
                    timestamp(),
                    f"not answered within {request.timeout_minutes} pipeline minutes (the action's timeout)",
                    "timeout",
                )
            if not prompting:
                time.sleep(self.poll_seconds)

    def _stdin_ready(self) -> bool:
        if self.stdin is None:
            return False
        readable, _, _ = select.select([self.stdin], [], [], self.poll_seconds)
        return bool(readable)

    def _read_prompt(self, request: ApprovalRequest, identity: str | None) -> ApprovalDecision:
        answer = self.stdin.readline().strip() if self.stdin is not None else ""
        refused = refusal(request, identity)
        if refused is not None or identity is None:
            return ApprovalDecision(False, identity or "nobody", timestamp(), f"refused: {refused}", "prompt")
        if answer.lower() in ("y", "yes"):
            return ApprovalDecision(True, identity, timestamp(), "approved at the prompt", "prompt")
        return ApprovalDecision(False, identity, timestamp(), answer or "rejected at the prompt", "prompt")


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


def approver_identity(environ: Mapping[str, str] | None = None, configured: str | None = None) -> str | None:
    """Who this shell answers as: $APPROVER, else the configured local identity (`rehearsal.approver`)."""
    environ = os.environ if environ is None else environ
    return environ.get("APPROVER") or configured or None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
