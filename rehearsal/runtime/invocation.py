"""One invocation's machinery: the worker process that runs it, its result, and the metrics its logs carry.

`rehearsal.runtime.functions` keeps the pools of these workers per version and routes calls to
them; this module knows the pipe protocol of `worker.py` and Lambda's embedded-metric format.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import select
import signal
import subprocess  # nosec B404 # runs worker.py with a Python interpreter, never a shell
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal.alarms.metrics import MetricStore
from rehearsal.runtime.sandbox import Sandbox

WORKER_SCRIPT = Path(__file__).with_name("worker.py")

LogSink = Callable[[dict[str, Any]], None]
# Set by a fault plan (rehearsal.runtime.faults) around one invocation: SIGKILL the worker this many
# seconds after its request is sent, as the platform may kill an execution environment mid-invoke.
KILL_DURING_CALL: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "kill_during_call", default=None
)


@dataclass
class InvocationResult:
    """The outcome of one invocation, as Lambda's Invoke API would report it."""

    function_name: str
    executed_version: str
    request_id: str
    payload: Any = None
    error: dict[str, Any] | None = None
    timed_out: bool = False
    throttled: bool = False
    duration_ms: float = 0.0
    init_ms: float | None = None  # set on a cold start

    @property
    def failed(self) -> bool:
        return self.error is not None


class Worker:
    """One worker process and its private request/response pipe."""

    def __init__(
        self,
        *,
        name: str,
        handler: str,
        code_dir: Path,
        version: str,
        environ: dict[str, str],
        sink: LogSink,
        sandbox: Sandbox,
        memory_mb: int,
    ) -> None:
        self.name = name
        requests_read, self._requests = os.pipe()
        self._responses, responses_write = os.pipe()
        self._open_fds: tuple[int, ...] = (self._requests, self._responses)
        self._pipes_lock = threading.Lock()
        self.process = subprocess.Popen(  # nosec B603 # fixed argv: an interpreter and our worker script
            [
                str(sandbox.interpreter.path),
                "-I",  # isolated: no PYTHON* variables, no user site, no script folder on the path
                "-S",  # and no site-packages of the interpreter: the path is code + layers + runtime
                str(WORKER_SCRIPT),
                f"--handler={handler}",
                f"--in-fd={requests_read}",
                f"--out-fd={responses_write}",
                f"--memory-mb={memory_mb}",
                *(f"--path={path}" for path in sandbox.layers),
                *(f"--runtime-path={path}" for path in sandbox.runtime_libraries),
            ],
            cwd=code_dir,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(requests_read, responses_write),
            start_new_session=True,
        )
        os.close(requests_read)
        os.close(responses_write)
        self._buffer = b""
        self.ready: dict[str, Any] | None = None
        self._logs = threading.Thread(target=self._forward_logs, args=(version, sink), daemon=True)
        self._logs.start()

    def _forward_logs(self, version: str, sink: LogSink) -> None:
        if self.process.stdout is None:  # pragma: no cover - always piped
            return
        for raw in self.process.stdout:
            sink(
                {
                    "type": "log",
                    "function": self.name,
                    "version": version,
                    "message": raw.decode().rstrip(),
                }
            )

    def _read_message(self, deadline: float) -> dict[str, Any] | None:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._responses], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self._responses, 1 << 16)
            if not chunk:
                raise EOFError("the worker exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def wait_ready(self, deadline: float) -> dict[str, Any] | None:
        if self.ready is None:
            self.ready = self._read_message(deadline)
        return self.ready

    def call(self, request: dict[str, Any], deadline: float) -> dict[str, Any] | None:
        os.write(self._requests, json.dumps(request).encode() + b"\n")
        kill_after = KILL_DURING_CALL.get()
        if kill_after is None:
            return self._read_message(deadline)
        killer = threading.Timer(kill_after, self._sigkill)
        killer.start()
        try:
            return self._read_message(deadline)
        finally:
            killer.cancel()

    def _sigkill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def kill(self) -> None:
        self._sigkill()
        self.close()

    def close_pipes(self) -> None:
        """Close the request pipe: the worker exits at the end of its input.

        Once only: a second `os.close` of the same numbers would close whatever file the process
        opened since under those numbers (another worker's pipe, a subprocess's stdout).
        """
        with self._pipes_lock:
            fds, self._open_fds = self._open_fds, ()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self, timeout: float = 5.0) -> None:
        """Close the pipes and reap the process (killing it if it does not exit in time)."""
        self.close_pipes()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._logs.join(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()


def record_embedded_metrics(store: MetricStore, document: Mapping[str, Any]) -> None:
    """Turn one CloudWatch embedded-metric-format log document into datapoints (what CloudWatch Logs does)."""
    timestamp = float(document["_aws"]["Timestamp"]) / 1000
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for metric in directive["Metrics"]:
            values = document[metric["Name"]]
            for dimension_set in directive["Dimensions"]:
                dims = {name: str(document[name]) for name in dimension_set}
                for value in values if isinstance(values, list) else [values]:
                    store.put(
                        directive["Namespace"],
                        metric["Name"],
                        dims,
                        float(value),
                        unit=metric.get("Unit", "None"),
                        timestamp=timestamp,
                    )
