"""The local cloud: one moto server per account and region on 127.0.0.1, reached via AWS_ENDPOINT_URL.

Each account and region a release reaches gets its own server process, which answers as that
account (moto reads `MOTO_ACCOUNT_ID` on every request, so the ARNs it builds carry it) and whose
clients sign for that region. moto keeps its state in process-wide globals, so separate processes
are the only isolation that cannot leak: a read across accounts finds nothing, as on AWS without
a role in the other account. Environments in one account and region share its server, as they
share one set of resources and quotas on AWS (ADR 0049). The server runs in a small child process of
ours (`python -m rehearsal.cloud.server`) that binds port 0 and reports the port it got, so there is no
race for a free port, and that exits when its stdin closes, so it dies with its parent even when
the parent is killed.

IAM is enforced (moto's `INITIAL_NO_AUTH_ACTION_COUNT` = 0, ADR 0043): before it serves, the child
creates the administrator IAM user whose fixed key the rehearsal's own clients sign with, so every
other caller (a function's role session) is checked against its policies
(`rehearsal.cloud.enforcement`).
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

from rehearsal.base.aws import (
    ACCESS_KEY_ID,
    ACCOUNT_ID,
    ADMINISTRATOR_USER_NAME,
    ALL_ENVIRONMENTS,
    DEFAULT_PLACE,
    REGION,
    SECRET_ACCESS_KEY,
    AccountRegion,
)
from rehearsal.base.errors import UserError
from rehearsal.cloud import enforcement

_COVERAGE_VARIABLES = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")
_ACCOUNT_VARIABLE = "REHEARSAL_CLOUD_ACCOUNT_ID"


@dataclass
class LocalCloud:
    """A running moto server for one account and region; `stop()` ends it and frees its port.

    `environment` labels it in messages (the first environment, or `pipeline`, that needed it)."""

    environment: str
    port: int
    process: subprocess.Popen[bytes] | None = field(repr=False)
    region: str = REGION
    account_id: str = ACCOUNT_ID
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def place(self) -> AccountRegion:
        return AccountRegion(account_id=self.account_id, region=self.region)

    def environ(self) -> dict[str, str]:
        """Variables that point boto3 (and the SAM or AWS CLI) at this cloud with the fake credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    @property
    def administrator_arn(self) -> str:
        """The identity the rehearsal's own clients act as (and that plays the Lambda service)."""
        return f"arn:aws:iam::{self.account_id}:user/{ADMINISTRATOR_USER_NAME}"

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

    def create_bucket(self, name: str) -> None:
        """CreateBucket as AWS takes it in this region: outside us-east-1 the request names the region
        ("If you don't specify a Region, the bucket is created in ... us-east-1", CreateBucketConfiguration;
        a request to another region's endpoint without it is refused, IllegalLocationConstraintException)."""
        s3 = self.client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})

    def client_as(self, service: str, access_key_id: str, secret_access_key: str, session_token: str) -> Any:
        """A new boto3 client for `service` signing with another identity's session (a function's role)."""
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server and free its port. Its data is not kept anywhere, so nothing is lost by
        killing it: a graceful exit cost ~1 s (werkzeug's shutdown poll, moto's teardown) per cloud.
        A server whose parent dies without calling this exits when its stdin closes."""
        process, self.process = self.process, None
        if process is None:
            return
        process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def start_local_cloud(
    environment: str = "local", *, place: AccountRegion = DEFAULT_PLACE, startup_timeout: float = 15.0
) -> LocalCloud:
    """Start a moto server answering as `place`'s account on a free loopback port; wait until it answers."""
    if environment not in ALL_ENVIRONMENTS:
        raise UserError(f"unknown environment {environment!r}: use one of {', '.join(ALL_ENVIRONMENTS)}")
    env = {key: value for key, value in os.environ.items() if key not in _COVERAGE_VARIABLES}
    env.update(_account_environ(place))
    env.update(enforcement_environment(place.account_id))
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
        cloud = LocalCloud(
            environment=environment,
            port=port,
            process=process,
            region=place.region,
            account_id=place.account_id,
        )
        wait_until_healthy(cloud.endpoint_url, deadline=time.monotonic() + startup_timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return cloud


def _account_environ(place: AccountRegion) -> dict[str, str]:
    """The server child's account and region: moto answers every request as `MOTO_ACCOUNT_ID`
    (moto/core/responses.py, `get_current_account`, checked first) and defaults to this region."""
    return {
        "MOTO_ACCOUNT_ID": place.account_id,
        "AWS_DEFAULT_REGION": place.region,
        "AWS_REGION": place.region,
    }


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
    """Poll moto's own API until it answers, or fail with one clear line at the deadline."""
    url = f"{endpoint_url}/moto-api/config"  # small; data.json dumps every model (IAM: ~700 KB)
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # nosec B310 # loopback http only
                if 200 <= response.status < 300:  # /moto-api/config answers 201
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


def enforcement_environment(account_id: str) -> dict[str, str]:
    """The server child's settings that turn moto's IAM enforcement on for every request (ADR 0043).

    `INITIAL_NO_AUTH_ACTION_COUNT` 0: no request is let through unchecked (moto's default is never to
    check). AWS managed policies are loaded so that a role can attach the ones SAM names
    (AWSLambdaBasicExecutionRole, AWSLambdaSQSQueueExecutionRole, ...), as moto ships them.
    """
    return {
        "INITIAL_NO_AUTH_ACTION_COUNT": "0",
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        _ACCOUNT_VARIABLE: account_id,
    }


def serve() -> None:  # pragma: no cover - runs in the server child, started without coverage for speed
    """Child side: run moto on port 0, print the port, serve until stdin closes or SIGTERM."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only the server child needs moto

    from rehearsal.cloud import moto_fixes  # noqa: PLC0415 - it imports moto too

    moto_fixes.apply()
    enforcement.install(os.environ.get(_ACCOUNT_VARIABLE, ACCOUNT_ID))
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
