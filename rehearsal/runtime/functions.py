"""Local Lambda: functions, immutable versions, aliases with weighted routing, and worker pools.

Each published version has its own pool of worker processes (`worker.py`); a worker serves one
invocation at a time, like an execution environment, so concurrent calls start more workers up
to `max_concurrency` and the function's reserved concurrency (beyond that the call is throttled).
Workers run under the interpreter the function's Runtime names, isolated from the rehearsal's own
virtualenv, with its layers and the runtime's libraries (`rehearsal.runtime.sandbox`); each caps
its address space at MemorySize plus a stated headroom (`worker.MEMORY_HEADROOM_MB`).
A call that outlives the function's timeout kills its worker and fails as `Sandbox.Timedout`.
Every call records Lambda's metrics (Invocations, Errors, Throttles, Duration) with its
dimensions into the environment's store.
The worker process itself and `InvocationResult` live in `rehearsal.runtime.invocation`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rehearsal.alarms.metrics import MetricStore
from rehearsal.base.aws import LAMBDA_DEFAULT_MEMORY_MB, LAMBDA_DEFAULT_TIMEOUT_SECONDS
from rehearsal.base.errors import UserError
from rehearsal.runtime.credentials import CREDENTIAL_VARIABLES, ExecutionRoles
from rehearsal.runtime.invocation import InvocationResult, LogSink, Worker, record_embedded_metrics
from rehearsal.runtime.sandbox import SandboxFactory

LATEST = "$LATEST"
_COVERAGE_VARIABLES = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")  # set where coverage measures
_PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "HOME", *_COVERAGE_VARIABLES)


class FunctionNotFoundError(LookupError):
    """No such function, version or alias (Lambda's ResourceNotFoundException)."""


@dataclass(frozen=True)
class FunctionConfig:
    """What a version is made of: code, handler, settings. Immutable once published."""

    name: str
    handler: str
    code_dir: Path
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout: float = LAMBDA_DEFAULT_TIMEOUT_SECONDS
    memory_mb: int = LAMBDA_DEFAULT_MEMORY_MB
    runtime: str = "python3.13"
    layers: tuple[str, ...] = ()
    reserved_concurrency: int | None = None  # None: the function shares the pool's limit
    role: str | None = None  # the execution role's ARN


@dataclass
class _Version:
    config: FunctionConfig
    number: str
    idle: list[Worker] = field(default_factory=list)
    busy: int = 0


class LocalFunctions:
    """The Lambda service of one environment: register, publish, route, invoke, record metrics."""

    def __init__(
        self,
        *,
        metrics: MetricStore,
        region: str,
        account_id: str,
        base_environ: Mapping[str, str],
        log_sink: LogSink | None = None,
        max_concurrency: int = 10,
        work_dir: Path | None = None,
        sandboxes: SandboxFactory | None = None,
        execution_roles: ExecutionRoles | None = None,
    ) -> None:
        self.metrics = metrics
        self.region = region
        self.account_id = account_id
        self.base_environ = dict(base_environ)
        self.log_sink: LogSink = log_sink or (lambda _record: None)
        self.max_concurrency = max_concurrency
        self._owns_work_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="rehearsal-lambda-"))
        self._lock = threading.Lock()
        self._latest: dict[str, FunctionConfig] = {}
        self._versions: dict[str, dict[str, _Version]] = {}
        self._aliases: dict[str, dict[str, dict[str, float]]] = {}
        self._last_called: dict[tuple[str, str | None], float] = {}  # (name, qualifier) -> wall clock
        self._random = random.Random()  # nosec B311 # traffic weighting, not security
        self._workers: set[Worker] = set()
        self._busy: dict[str, int] = {}  # per function, across its versions (reserved concurrency)
        self.sandboxes = sandboxes or SandboxFactory()
        # With execution roles, each worker signs with its role's session, never with `base_environ`'s
        # credentials; without (a runtime on its own, in tests), it gets `base_environ` as given.
        self.execution_roles = execution_roles
        # What this runtime does not do as Lambda does, as (what, where, why), for the run's record.
        self.not_emulated: list[tuple[str, str, str]] = []
        # URL prefix -> its local stand-in, in function environments: the stack's own API stage URLs
        # become the local gateway's (a DNS stand-in; set by `rehearsal.runtime.environment`).
        self.url_stand_ins: dict[str, str] = {}

    # ------------------------------------------------------------ control plane

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def put_function(self, config: FunctionConfig) -> None:
        """Create the function or update its `$LATEST` configuration and code.

        Its interpreter, layers and runtime libraries are made ready here (installed once per
        machine), so no invocation waits for an install; a runtime or layer that cannot be emulated
        fails here with one line.
        """
        sandbox = self.sandboxes.sandbox(config.runtime, config.layers)
        self._role_environ(config)  # a role that cannot be assumed fails the deploy here, with one line
        if sandbox.interpreter.note:
            self._note(("interpreter", config.name, sandbox.interpreter.note))
        with self._lock:
            self._latest[config.name] = config
            self._versions.setdefault(config.name, {})
            self._aliases.setdefault(config.name, {})

    def _note(self, fact: tuple[str, str, str]) -> None:
        if fact not in self.not_emulated:
            self.not_emulated.append(fact)
            self.log_sink({"type": "note", "what": fact[0], "where": fact[1], "why": fact[2]})

    def function_names(self) -> list[str]:
        return sorted(self._latest)

    def publish_version(
        self,
        name: str,
        *,
        code: Path | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> str:
        """Freeze `$LATEST` (optionally with new code: a folder or a .zip) as the next version number."""
        config = self._config(name)
        if code is not None:
            config = replace(config, code_dir=self.unpack(name, code))
        if environment is not None:
            config = replace(config, environment=dict(environment))
        with self._lock:
            versions = self._versions[name]
            number = str(max((int(key) for key in versions if key.isdigit()), default=0) + 1)
            versions[number] = _Version(config=config, number=number)
            self._latest[name] = config
        return number

    def unpack(self, name: str, code: Path) -> Path:
        """A code folder for `code`: the folder itself, or a private copy of a .zip's contents."""
        if code.is_dir():
            return code.resolve()
        target = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work_dir))
        with zipfile.ZipFile(code) as archive:
            archive.extractall(target)  # our own packaged code, into a private folder
        return target

    def versions(self, name: str) -> list[str]:
        self._config(name)
        return sorted((v for v in self._versions[name] if v.isdigit()), key=int)

    def version_config(self, name: str, version: str) -> FunctionConfig:
        return self._version(name, version).config

    def set_alias(self, name: str, alias: str, routing: Mapping[str, float]) -> None:
        """Point `alias` at versions by weight, e.g. `{"1": 0.9, "2": 0.1}`; weights must sum to 1."""
        for version in routing:
            self._version(name, version)
        total = sum(routing.values())
        if abs(total - 1.0) > 1e-6 or any(weight < 0 for weight in routing.values()):
            raise ValueError(f"alias {alias} weights must be non-negative and sum to 1, got {dict(routing)}")
        with self._lock:
            self._aliases[name][alias] = {
                version: weight for version, weight in routing.items() if weight > 0
            }

    def has_alias(self, name: str, alias: str) -> bool:
        return alias in self._aliases.get(name, {})

    def alias_routing(self, name: str, alias: str) -> dict[str, float]:
        self._config(name)
        try:
            return dict(self._aliases[name][alias])
        except KeyError as error:
            raise FunctionNotFoundError(f"function {name} has no alias {alias}") from error

    def last_called(self, name: str, qualifier: str | None) -> float | None:
        """When a call through `name:qualifier` last started (wall clock), finished or not: a new
        version's cold start can hold a call for seconds before any metric records it."""
        return self._last_called.get((name, qualifier))

    def _config(self, name: str) -> FunctionConfig:
        try:
            return self._latest[name]
        except KeyError as error:
            raise FunctionNotFoundError(f"function not found: {name}") from error

    def _version(self, name: str, version: str) -> _Version:
        self._config(name)
        try:
            return self._versions[name][version]
        except KeyError as error:
            raise FunctionNotFoundError(f"function {name} has no version {version}") from error

    def resolve_target(self, target: str, qualifier: str | None = None) -> tuple[str, str | None]:
        """Split a name, partial ARN or ARN (with optional `:qualifier`) into (name, qualifier)."""
        parts = target.split(":")
        if target.startswith("arn:"):
            name, inline = parts[6], (parts[7] if len(parts) > 7 else None)
        else:
            name, inline = parts[0], (parts[1] if len(parts) > 1 else None)
        return name, qualifier or inline

    def _pick_version(self, name: str, qualifier: str | None) -> str:
        if qualifier is None or qualifier == LATEST:
            return LATEST
        if qualifier.isdigit():
            self._version(name, qualifier)
            return qualifier
        routing = self.alias_routing(name, qualifier)
        roll = self._random.random()
        for version, weight in routing.items():
            roll -= weight
            if roll < 0:
                return version
        return next(reversed(routing))

    # ------------------------------------------------------------ data plane

    def invoke(self, target: str, event: Any, *, qualifier: str | None = None) -> InvocationResult:
        """Invoke a function (name or ARN; a version or alias as qualifier) and wait for its result."""
        name, qualifier = self.resolve_target(target, qualifier)
        executed = self._pick_version(name, qualifier)
        self._last_called[(name, qualifier)] = time.time()
        if executed == LATEST:
            version = _Version(config=self._config(name), number=LATEST)
            with self._lock:
                version = self._versions[name].setdefault(LATEST, version)
                version.config = self._config(name)
        else:
            version = self._version(name, executed)
        result = self._run(version, event, self.function_arn(name, qualifier))
        self._record(name, qualifier, executed, result)
        return result

    def _acquire(self, version: _Version) -> tuple[Worker | None, bool]:
        name, reserved = version.config.name, version.config.reserved_concurrency
        with self._lock:
            if reserved is not None and self._busy.get(name, 0) >= reserved:
                return None, False  # Lambda throttles past a function's reserved concurrency
            if not version.idle and version.busy >= self.max_concurrency:
                return None, False
            version.busy += 1
            self._busy[name] = self._busy.get(name, 0) + 1
            if version.idle:
                return version.idle.pop(), False
        return self._spawn(version), True

    def _release(self, version: _Version, worker: Worker | None) -> None:
        with self._lock:
            version.busy -= 1
            self._busy[version.config.name] -= 1
            if worker is not None:
                version.idle.append(worker)

    def _spawn(self, version: _Version) -> Worker:
        config = version.config
        name = config.name
        environ = {key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ}
        environ.update({key: self._stand_in(value) for key, value in config.environment.items()})
        environ.update(self.base_environ)
        if self.execution_roles is not None:
            environ = {key: value for key, value in environ.items() if key not in CREDENTIAL_VARIABLES}
        environ.update(self._role_environ(config))
        environ.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_VERSION": version.number,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(config.timeout)),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"rehearsal/[{version.number}]{uuid.uuid4().hex}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
                "LAMBDA_RUNTIME_DIR": str(
                    self.sandboxes.sandbox(config.runtime, config.layers).runtime_libraries[0]
                ),
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "LAMBDA_TASK_ROOT": str(config.code_dir),
                "_HANDLER": config.handler,
                "TZ": ":UTC",
                "PYTHONUNBUFFERED": "1",
            }
        )
        worker = Worker(
            name=name,
            handler=config.handler,
            code_dir=config.code_dir,
            version=version.number,
            environ=environ,
            sink=self._on_log,
            sandbox=self.sandboxes.sandbox(config.runtime, config.layers),
            memory_mb=config.memory_mb,
        )
        with self._lock:
            self._workers.add(worker)
        return worker

    def _role_environ(self, config: FunctionConfig) -> dict[str, str]:
        """The execution role's session as Lambda sets it; any other credential is removed first."""
        if self.execution_roles is None:
            return {}
        if config.role is None:
            raise UserError(f"function {config.name} has no execution role (Role): Lambda requires one")
        return self.execution_roles.session(config.role, config.name).environ()

    def _stand_in(self, value: str) -> str:
        for prefix, local in self.url_stand_ins.items():
            if value == prefix or value.startswith(prefix + "/"):
                return local + value[len(prefix) :]
        return value

    def _on_log(self, record: dict[str, Any]) -> None:
        """Forward a log line; an embedded-metric-format line also becomes metrics, as in CloudWatch."""
        message = record["message"]
        if message.startswith("{") and '"_aws"' in message:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record_embedded_metrics(self.metrics, json.loads(message))
        self.log_sink(record)

    def _discard(self, worker: Worker) -> None:
        with self._lock:
            self._workers.discard(worker)
        worker.kill()

    def _run(self, version: _Version, event: Any, invoked_arn: str) -> InvocationResult:
        name = version.config.name
        request_id = str(uuid.uuid4())
        result = InvocationResult(function_name=name, executed_version=version.number, request_id=request_id)
        worker, cold = self._acquire(version)
        if worker is None:
            result.throttled = True
            result.error = {"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded."}
            return result
        keep: Worker | None = worker
        try:
            if cold:
                ready = worker.wait_ready(time.monotonic() + max(version.config.timeout, 10.0))
                result.init_ms = None if ready is None else ready["init_ms"]
            started = time.monotonic()
            deadline = started + version.config.timeout
            request = {
                "event": event,
                "request_id": request_id,
                "invoked_function_arn": invoked_arn,
                "deadline_ms": (time.time() + version.config.timeout) * 1000,
            }
            response = worker.call(request, deadline)
            result.duration_ms = (time.monotonic() - started) * 1000
            if response is None:
                result.timed_out = True
                result.error = {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                    f"{version.config.timeout:.2f} seconds",
                }
                keep = None
                self._discard(worker)
            elif response["ok"]:
                result.payload = response["result"]
            else:
                result.error = response["error"]
        except (EOFError, OSError):
            result.error = {"errorType": "Runtime.ExitError", "errorMessage": "the function's process exited"}
            keep = None
            self._discard(worker)
        finally:
            self._release(version, keep)
        return result

    def _record(self, name: str, qualifier: str | None, executed: str, result: InvocationResult) -> None:
        sets: list[dict[str, str]] = [{}, {"FunctionName": name}]
        if qualifier is not None and qualifier != LATEST:
            resource = f"{name}:{qualifier}"
            sets.append({"FunctionName": name, "Resource": resource})
            sets.append({"FunctionName": name, "Resource": resource, "ExecutedVersion": executed})
        now = time.time()
        for dims in sets:
            if result.throttled:
                self.metrics.put("AWS/Lambda", "Throttles", dims, 1, unit="Count", timestamp=now)
                continue
            self.metrics.put("AWS/Lambda", "Invocations", dims, 1, unit="Count", timestamp=now)
            self.metrics.put("AWS/Lambda", "Errors", dims, int(result.failed), unit="Count", timestamp=now)
            self.metrics.put(
                "AWS/Lambda", "Duration", dims, result.duration_ms, unit="Milliseconds", timestamp=now
            )
        self.log_sink(
            {
                "type": "invocation",
                "function": name,
                "qualifier": qualifier,
                "version": executed,
                "request_id": result.request_id,
                "duration_ms": round(result.duration_ms, 2),
                "init_ms": None if result.init_ms is None else round(result.init_ms, 2),
                "status": _status(result),
            }
        )

    def close(self) -> None:
        """Stop every worker: killed, as Lambda ends an execution environment, except that an idle one
        whose coverage is measured (the test suite) exits when its request pipe closes, writing its data."""
        with self._lock:
            idle = {
                worker for versions in self._versions.values() for v in versions.values() for worker in v.idle
            }
            for versions in self._versions.values():
                for version in versions.values():
                    version.idle.clear()
            workers, self._workers = self._workers, set()
        # A graceful exit costs ~1-2 s of interpreter teardown per environment: only for coverage's data.
        graceful = idle if any(variable in os.environ for variable in _COVERAGE_VARIABLES) else set()
        for worker in workers - graceful:
            worker.kill()
        for worker in graceful:  # all at once: each may take a moment to exit (coverage writes its data)
            worker.close_pipes()
        for worker in graceful:
            worker.close()
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def _status(result: InvocationResult) -> str:
    if result.throttled:
        return "throttled"
    if result.timed_out:
        return "timeout"
    return "error" if result.failed else "ok"
