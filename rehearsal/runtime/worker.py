"""One Lambda execution environment: a process that loads a handler by its string and serves invocations.

Started by `rehearsal.runtime.invocation` as `python -I -S worker.py --handler pkg.module.fn
--in-fd N --out-fd M --path LAYER ... --runtime-path LIBS --memory-mb MB` with the code folder as its
working directory, under the interpreter the function's Runtime names. Isolated (`-I -S`), its
`sys.path` is the standard library only; like Lambda's Python runtime it then puts the code folder
first, the layers' folders next and the runtime's own libraries (boto3) last, caps its address
space for the function's memory, imports the handler module once (the cold start), reports
`ready`, then answers one JSON request line at a time on a private pipe; stdout and stderr stay
the function's own log stream. It needs only the standard library and imports nothing from the
rehearsal or the project's virtualenv, so the function sees what it would see on Lambda.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO


class LambdaContext:
    """The context object Lambda passes to a Python handler (the attributes Powertools reads)."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name: str = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version: str = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb: str = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name: str = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name: str = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.invoked_function_arn: str = request["invoked_function_arn"]
        self.aws_request_id: str = request["request_id"]
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline_ms: float = request["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        return max(int(self._deadline_ms - time.time() * 1000), 0)


def error_payload(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """Lambda's shape for an unhandled error: errorMessage, errorType, stackTrace."""
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def load_handler(handler: str) -> Callable[[Any, LambdaContext], Any]:
    """Import `pkg.module` of `pkg.module.function` and return the function, as Lambda's runtime does."""
    module_name, _, function_name = handler.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise _InitError(
            f"Unable to import module '{module_name}': {error}", "Runtime.ImportModuleError"
        ) from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise _InitError(
            f"Handler '{function_name}' missing on module '{module_name}'", "Runtime.HandlerNotFound"
        )
    return function  # type: ignore[no-any-return]


class _InitError(Exception):
    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _send(channel: BinaryIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message).encode() + b"\n")
    channel.flush()


def serve(handler_string: str, inbound: BinaryIO, outbound: BinaryIO) -> None:
    """Initialise once, then answer invocation requests until the parent closes the pipe."""
    started = time.perf_counter()
    handler: Callable[[Any, LambdaContext], Any] | None = None
    init_error: dict[str, Any] | None = None
    try:
        handler = load_handler(handler_string)
    except _InitError as error:
        init_error = error_payload(error, error.error_type)
    except Exception as error:  # an exception raised while the module initialises
        init_error = error_payload(
            error, "Runtime.UserCodeSyntaxError" if isinstance(error, SyntaxError) else None
        )
    _send(outbound, {"type": "ready", "init_ms": (time.perf_counter() - started) * 1000, "error": init_error})
    for line in inbound:
        request = json.loads(line)
        if handler is None:
            response: dict[str, Any] = {"ok": False, "error": init_error}
        else:
            response = _invoke(handler, request)
        sys.stdout.flush()
        sys.stderr.flush()
        _send(outbound, response)


def _invoke(handler: Callable[[Any, LambdaContext], Any], request: dict[str, Any]) -> dict[str, Any]:
    try:
        result = handler(request["event"], LambdaContext(request))
    except Exception as error:
        return {"ok": False, "error": error_payload(error)}
    try:
        return {"ok": True, "result": json.loads(json.dumps(result))}
    except (TypeError, ValueError) as error:
        return {"ok": False, "error": error_payload(error, "Runtime.MarshalError")}


# The address-space cap is the function's MemorySize plus this much: an interpreter maps far more
# than it touches (shared libraries, thread stacks, allocator arenas), so a cap at MemorySize
# itself would fail functions that fit on Lambda. 256 MB of headroom lets boto3 + Powertools load
# in a 128 MB function while an allocation of a few times MemorySize still fails (MemoryError).
MEMORY_HEADROOM_MB = 256


def set_sys_path(code_dir: str, layers: list[str], runtime: list[str]) -> None:
    """Code, then layers, then the standard library, then the runtime's libraries, as Lambda orders them."""
    here = os.path.dirname(os.path.abspath(__file__))
    stdlib = [path for path in sys.path if path and os.path.abspath(path) != here]
    sys.path[:] = [code_dir, *layers, *stdlib, *runtime]


def limit_memory(memory_mb: int) -> None:
    """Cap the address space at MemorySize + headroom, where the OS allows it."""
    limit = (memory_mb + MEMORY_HEADROOM_MB) * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or limit <= hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--in-fd", type=int, required=True)
    parser.add_argument("--out-fd", type=int, required=True)
    parser.add_argument("--path", action="append", default=[], help="a layer folder, in order")
    parser.add_argument("--runtime-path", action="append", default=[], help="the runtime's libraries")
    parser.add_argument("--memory-mb", type=int, default=0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops us in order
    set_sys_path(os.getcwd(), args.path, args.runtime_path)
    if args.memory_mb:
        limit_memory(args.memory_mb)
    with os.fdopen(args.in_fd, "rb") as inbound, os.fdopen(args.out_fd, "wb") as outbound:
        serve(args.handler, inbound, outbound)


if __name__ == "__main__":
    main()
