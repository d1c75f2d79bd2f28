"""After a crash: the next start finds what a killed runner left half-done and puts it back.

A runner killed with SIGKILL (or by a crash, or a power cut) cannot clean up: its deployment's
in-flight record stays under `.rehearsal/deployer/<environment>/`, and its run stays "InProgress".
Whatever starts next while no release holds the lock (`make release`, `make release-status`)
puts each such environment back on its last promoted release, marks the run `Interrupted`, and
says so in one line (docs/decisions/0055-interrupted-releases.md).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rehearsal.base.layout import StateLayout
from rehearsal.release.deploy_port import Deployer, RecoveredEnvironment
from rehearsal.release.run_record import InterruptedRun, close_interrupted_run

INTERRUPTED_MESSAGE = "interrupted: the release's runner stopped (killed or crashed) before it ended"


def recover_interrupted_release(state_dir: Path, deployer: Deployer) -> str | None:
    """With the release lock held: undo what a killed release left in flight; one line, or None."""
    restored = deployer.recover_interrupted()
    run = close_interrupted_run(state_dir, message=INTERRUPTED_MESSAGE)
    if not restored and run is None:
        return None
    return describe_recovery(run, restored)


def recover_when_idle(state_dir: Path, deployer: Deployer) -> str | None:
    """`recover_interrupted_release` unless a release is running now (then it owns its state)."""
    if not state_dir.is_dir():
        return None
    with _lock_if_free(StateLayout(root=state_dir).lock) as free:
        return recover_interrupted_release(state_dir, deployer) if free else None


def describe_recovery(run: InterruptedRun | None, restored: tuple[RecoveredEnvironment, ...]) -> str:
    if run is None:
        stopped = "A release was interrupted"
    else:
        where = "/".join(part for part in (run.stage, run.action) if part) or "its start"
        stopped = f"Release {run.run_id} was interrupted during {where}"
    if not restored:
        return f"{stopped} (its runner stopped): no environment was mid-deployment; run marked Interrupted"
    environments = "; ".join(
        f"{item.environment} back on {item.serving[:12]}, its last promoted release "
        f"(the deployment of {item.abandoned[:12]} was abandoned)"
        for item in restored
    )
    return f"{stopped} (its runner stopped): {environments}"


@contextmanager
def _lock_if_free(lock_path: Path) -> Iterator[bool]:
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
