"""Child processes the bench starts: each in its own session, timed, and never left behind.

Every process started through a `Processes` is tracked until it is reaped; `kill_all()` (run at
exit, on Ctrl-C and on errors) kills the process group of any that is still alive, which takes
its children (cdk's node, a moto server, Lambda workers) with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess  # nosec B404 # fixed argv lists, never a shell
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def progress(message: str) -> None:
    """One progress line on stderr (the table goes to stdout)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Completed:
    """A finished command: its wall time, exit status and the tail of its output."""

    seconds: float
    returncode: int
    output: str

    @property
    def last_line(self) -> str:
        lines = [line for line in self.output.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


@dataclass
class Processes:
    """Starts, times and reaps child processes; `kill_all()` leaves none behind."""

    live: set[subprocess.Popen[bytes]] = field(default_factory=set)

    def start(
        self,
        argv: Sequence[str],
        *,
        cwd: Path = REPO,
        env: Mapping[str, str] | None = None,
        stdout: int = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(  # nosec B603 # argv built by the bench, never a shell
            list(argv),
            cwd=cwd,
            env=dict(env if env is not None else os.environ),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.live.add(process)
        return process

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path = REPO,
        env: Mapping[str, str] | None = None,
        timeout: float = 300.0,
    ) -> Completed:
        """Run to completion and time it (wall clock, from spawn to exit); a timeout kills the group."""
        started = time.perf_counter()
        process = self.start(argv, cwd=cwd, env=env)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(process)
            return Completed(time.perf_counter() - started, -9, f"timed out after {timeout:.0f} s")
        seconds = time.perf_counter() - started
        self.live.discard(process)
        return Completed(seconds, process.returncode, output.decode(errors="replace"))

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """Kill the process's whole group and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        self.live.discard(process)

    def reap(self, process: subprocess.Popen[bytes]) -> None:
        """Forget a process that has exited by itself (kill its group if anything of it is left)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        self.live.discard(process)

    def kill_all(self) -> None:
        for process in list(self.live):
            self.kill(process)
