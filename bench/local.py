"""`make local` ready time: from spawn to the printed API URL, then Ctrl-C and a clean exit.

Runs `python -m rehearsal local --port 0 --quiet` (what `make local` runs, on a free port), reads
its output until the `API` line, sends SIGINT, and checks that it exits and frees its ports.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess  # nosec B404 # SIGINT and wait on our own child
import sys
import threading
import time

from bench.figures import Figure
from bench.processes import Processes, progress

TARGET_S = 5.0
_API_LINE = re.compile(r"^\s+API\s+(http://127\.0\.0\.1:(\d+))")
_CLOUD_LINE = re.compile(r"AWS_ENDPOINT_URL=http://127\.0\.0\.1:(\d+)")


def _read_lines(stream: object, lines: queue.Queue[str | None]) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        lines.put(raw.decode(errors="replace"))
    lines.put(None)


def _port_is_listening(port: int) -> bool:
    from rehearsal.cloud.server import port_is_free  # noqa: PLC0415 - the rehearsal's own probe

    return not port_is_free(port)


def _one_start(processes: Processes) -> tuple[float, float, list[str]]:
    """(seconds until the API line, seconds to stop after SIGINT, problems seen)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    process = processes.start([sys.executable, "-m", "rehearsal", "local", "--port", "0", "--quiet"], env=env)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    ready = -1.0
    ports: list[int] = []
    problems: list[str] = []
    deadline = started + 60
    try:
        while ready < 0:
            line = lines.get(timeout=max(deadline - time.perf_counter(), 0.01))
            if line is None:
                raise RuntimeError(f"rehearsal local exited {process.wait()} before it was ready")
            if match := _CLOUD_LINE.search(line):
                ports.append(int(match.group(1)))
            if match := _API_LINE.match(line):
                ready = time.perf_counter() - started
                ports.append(int(match.group(2)))
        while (line := lines.get(timeout=10)) is not None and "Ctrl-C" not in line:
            if match := _CLOUD_LINE.search(line):
                ports.append(int(match.group(1)))
        stopping = time.perf_counter()
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            problems.append("did not exit within 30 s of SIGINT (killed)")
            processes.kill(process)
            code = -9
        stopped = time.perf_counter() - stopping
        reader.join(timeout=5)
        if code not in (0, 130):  # 130: interrupted before its own SIGINT handler was installed
            problems.append(f"exited {code} after SIGINT")
        processes.reap(process)
        problems.extend(
            f"port {port} still listening after exit" for port in ports if _port_is_listening(port)
        )
    except queue.Empty:
        processes.kill(process)
        raise RuntimeError("rehearsal local printed no API line within 60 s") from None
    except BaseException:
        processes.kill(process)
        raise
    return ready, stopped, problems


def measure_local(processes: Processes, runs: int) -> list[Figure]:
    ready_runs: list[float] = []
    stop_runs: list[float] = []
    problems: list[str] = []
    figure = Figure(name="make local ready", unit="s", target=TARGET_S)
    try:
        for round_number in range(1, runs + 1):
            progress(f"local: start {round_number}/{runs}")
            ready, stopped, seen = _one_start(processes)
            ready_runs.append(ready)
            stop_runs.append(stopped)
            problems.extend(seen)
    except RuntimeError as error:
        figure.not_measured = str(error)
        return [figure]
    figure.runs = ready_runs
    figure.note = f"Ctrl-C to exit: {', '.join(f'{run:.2f}' for run in stop_runs)} s; " + (
        "; ".join(sorted(set(problems))) if problems else "every port freed after exit"
    )
    return [figure]
