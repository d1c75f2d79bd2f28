"""The local cloud: one moto server per environment on 127.0.0.1, reached by boto3 via AWS_ENDPOINT_URL.

Each environment (`local`, `staging`, `production`) gets its own server process. moto keeps its
state in process-wide globals, so separate processes are the only isolation that cannot leak
(one server with per-environment names would share one account and one set of quotas), and a
stage can be torn down without touching the other. The server runs in a small child process of
ours (`python -m rehearsal.cloud.server`) that binds port 0 and reports the port it got, so there is no
race for a free port, and that exits when its stdin closes, so it dies with its parent even when
the parent is killed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess  # nosec B404 # starts our own module with the current interpreter, never a shell
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from rehearsal.base.aws import ACCESS_KEY_ID, ACCOUNT_ID, ALL_ENVIRONMENTS, REGION, SECRET_ACCESS_KEY
from rehearsal.base.errors import UserError

_COVERAGE_VARIABLES = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")


@dataclass
class LocalCloud:
    """A running moto server for one environment; `stop()` ends it and frees its port."""

    environment: str
    port: int
    process: subprocess.Popen[bytes] | None = field(repr=False)
    region: str = REGION
    account_id: str = ACCOUNT_ID
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        """Variables that point boto3 (and the SAM or AWS CLI) at this cloud with the fake credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, service: str) -> Any:
        """A boto3 client for `service` bound to this cloud, made once (clients are thread-safe)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=ACCESS_KEY_ID,
                aws_secret_access_key=SECRET_ACCESS_KEY,
            )
        return self._clients[service]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (closing its stdin asks it to exit), killing it if it does not."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def start_local_cloud(environment: str = "local", *, startup_timeout: float = 15.0) -> LocalCloud:
    """Start a moto server for `environment` on a free loopback port and wait until it answers."""
    if environment not in ALL_ENVIRONMENTS:
        raise UserError(f"unknown environment {environment!r}: use one of {', '.join(ALL_ENVIRONMENTS)}")
    env = {key: value for key, value in os.environ.items() if key not in _COVERAGE_VARIABLES}
    process = subprocess.Popen(  # nosec B603 # fixed argv: this interpreter running our own module
        [sys.executable, "-m", "rehearsal.cloud.server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,  # Ctrl-C reaches us only; we stop the server in order
    )
    try:
        port = _read_port(process, startup_timeout)
        cloud = LocalCloud(environment=environment, port=port, process=process)
        wait_until_healthy(cloud.endpoint_url, deadline=time.monotonic() + startup_timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return cloud


def _read_port(process: subprocess.Popen[bytes], timeout: float) -> int:
    if process.stdout is None:  # pragma: no cover - always piped above
        raise UserError("the local cloud has no output pipe")
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else b""
    if not line:
        raise UserError(
            "the local cloud (moto server) did not start: check that moto[server] is installed (make install)"
        )
    port: int = json.loads(line)["port"]
    return port


def wait_until_healthy(endpoint_url: str, *, deadline: float) -> None:
    """Poll moto's own API until it answers 200, or fail with one clear line at the deadline."""
    url = f"{endpoint_url}/moto-api/data.json"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # nosec B310 # loopback http only
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise UserError(f"the local cloud at {endpoint_url} did not become healthy in time")
        time.sleep(0.05)


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def serve() -> None:  # pragma: no cover - runs in the server child, started without coverage for speed
    """Child side: run moto on port 0, print the port, serve until stdin closes or SIGTERM."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only the server child needs moto

    from rehearsal.cloud import moto_fixes  # noqa: PLC0415 - it imports moto too

    moto_fixes.apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def stop_at_end_of_input() -> None:
        sys.stdin.buffer.read()
        stopped.set()

    threading.Thread(target=stop_at_end_of_input, daemon=True).start()
    sys.stdout.write(json.dumps({"port": port}) + "\n")
    sys.stdout.flush()
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    serve()
