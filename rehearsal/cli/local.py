"""`rehearsal local`: run the service offline until Ctrl-C (what `make local` calls).

Starts the local cloud, provisions `service/template.yaml` into it, runs every function in the
local Lambda runtime behind the local API gateway and event sources, prints how to reach it, then
streams structured invocation logs. Ctrl-C stops every process it started and frees its ports.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from rehearsal.base.aws import ACCESS_KEY_ID, LOCAL, SECRET_ACCESS_KEY, SERVICE_ENVIRONMENTS
from rehearsal.base.errors import UserError
from rehearsal.cloud.server import port_is_free

DEFAULT_TEMPLATE = Path("service/template.yaml")


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "local", help="run the service offline: local cloud, local Lambda runtime, API gateway"
    )
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template (%(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 3000),
        help="gateway port (PORT=, default 3000)",
    )
    parser.add_argument("--environment", default=LOCAL, choices=SERVICE_ENVIRONMENTS)
    parser.add_argument("--quiet", action="store_true", help="print the summary only, not the logs")
    parser.add_argument(
        "--outputs-file", type=Path, help="write the stack outputs and credentials as JSON here once ready"
    )
    parser.set_defaults(run=run_local)


def run_local(
    args: argparse.Namespace, *, stop: threading.Event | None = None, out: TextIO = sys.stdout
) -> int:
    """Start the environment, print the summary, stream logs until Ctrl-C (or `stop` is set)."""
    from rehearsal.runtime.environment import start_environment  # noqa: PLC0415 - keeps --help fast

    if not args.template.is_file():
        raise UserError(f"no template at {args.template}: run from the repository root or pass --template")
    if args.port and not port_is_free(args.port):
        raise UserError(f"port {args.port} is in use: stop what uses it or choose another with PORT=")
    started = time.monotonic()
    printer = _LogPrinter(out, quiet=args.quiet)
    environment = start_environment(
        template_path=args.template, environment=args.environment, port=args.port, log_sink=printer
    )
    try:
        summary = describe(environment, ready_seconds=time.monotonic() - started)
        out.write(summary)
        out.flush()
        if args.outputs_file:
            # Whole or not at all: a script waiting for the file never reads it half-written.
            partial = args.outputs_file.with_name(f".{args.outputs_file.name}.partial")
            partial.write_text(json.dumps(outputs_document(environment), indent=2))
            partial.replace(args.outputs_file)
        stopped = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C (SIGINT, even where a shell started us with it ignored) and SIGTERM both stop cleanly.
            for signal_number in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signal_number, lambda *_: stopped.set())
        stopped.wait()
        out.write("\nstopping: pollers, gateway, workers, local cloud\n")
    finally:
        environment.stop()
    return 0


def outputs_document(environment: Any) -> dict[str, Any]:
    """What tests and tools need to reach the environment: outputs, endpoint and credentials."""
    return {
        "environment": environment.name,
        "baseUrl": environment.base_url,
        "outputs": environment.outputs(),
        "endpointUrl": environment.cloud.endpoint_url,
        "region": environment.cloud.region,
        "accountId": environment.cloud.account_id,
        "accessKeyId": ACCESS_KEY_ID,
        "secretAccessKey": SECRET_ACCESS_KEY,
    }


def describe(environment: Any, *, ready_seconds: float) -> str:
    """The start-up summary: URL, credentials, resources, what is not emulated."""
    lines = [
        f"rehearsal: environment {environment.name!r} ready in {ready_seconds:.1f}s",
        f"  API          {environment.base_url}  (e.g. {environment.base_url}/orders; sign with SigV4)",
        f"  credentials  access key {ACCESS_KEY_ID!r}, secret {SECRET_ACCESS_KEY!r}, region "
        f"{environment.cloud.region!r}, service 'execute-api'",
        f"  local cloud  AWS_ENDPOINT_URL={environment.cloud.endpoint_url}, account "
        f"{environment.cloud.account_id!r} (rehearsal/base/aws.py's defaults: no pipeline deploys it)",
        "  outputs",
        *(f"    {name:<28} {value}" for name, value in environment.outputs().items()),
        "  provisioned",
        *(
            f"    {kind:<32} {logical:<34} {physical}"
            for logical, kind, physical in environment.stack.created
        ),
        "  not emulated",
        *(
            f"    {kind:<32} {logical:<34} {reason}"
            for logical, kind, reason in environment.stack.not_emulated
        ),
        *(f"    route  {problem}" for problem in environment.gateway.problems),
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


class _LogPrinter:
    """Structured log lines: one JSON object per line, function logs tagged with function and version."""

    def __init__(self, out: TextIO, *, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        if self.quiet:
            return
        with self.lock:
            self.out.write(json.dumps(record, default=str) + "\n")
            self.out.flush()
