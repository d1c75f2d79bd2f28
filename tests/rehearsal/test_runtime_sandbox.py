"""Functions run as Lambda runs them: the Runtime's interpreter, isolated, with layers and its SDK."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rehearsal.alarms.metrics import MetricStore
from rehearsal.base.aws import LAMBDA_PYTHON_RUNTIME_LIBRARIES, POWERTOOLS_LAYER_EXTRA_LIBRARIES
from rehearsal.base.errors import UserError
from rehearsal.runtime import sandbox as sandbox_module
from rehearsal.runtime import worker
from rehearsal.runtime.environment import LocalEnvironment
from rehearsal.runtime.functions import FunctionConfig, LocalFunctions
from rehearsal.runtime.sandbox import Interpreter, find_interpreter, install_folder, layer_requirements
from tests.rehearsal.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
POWERTOOLS = "{{resolve:ssm:/aws/service/powertools/python/arm64/python3.13/3.37.0}}"
PROBE = """
import sys

def handler(event, context):
    found = {}
    for name in event["modules"]:
        try:
            module = __import__(name)
            found[name] = getattr(module, "__file__", "") or ""
        except ImportError:
            found[name] = None
    return {"found": found, "python": "%d.%d" % sys.version_info[:2]}

def allocate(event, context):
    return len(bytearray(event["megabytes"] * 1024 * 1024))
"""


@pytest.fixture
def functions(tmp_path: Path) -> Iterator[LocalFunctions]:
    (tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")
    local = LocalFunctions(
        metrics=MetricStore(), region="us-east-1", account_id="123456789012", base_environ={}
    )
    try:
        yield local
    finally:
        local.close()


def _put(functions: LocalFunctions, code: Path, handler: str = "probe.handler", **settings: object) -> None:
    functions.put_function(
        FunctionConfig(name="probe", handler=handler, code_dir=code, **settings)  # type: ignore[arg-type]
    )


def test_a_worker_cannot_import_what_only_the_projects_virtualenv_holds(
    functions: LocalFunctions, tmp_path: Path
) -> None:
    assert importlib.util.find_spec("hypothesis") is not None  # present here, in the project's virtualenv
    _put(functions, tmp_path)
    result = functions.invoke("probe", {"modules": ["hypothesis", "boto3", "aws_lambda_powertools"]})
    assert result.error is None, result.error
    found = result.payload["found"]
    assert found["hypothesis"] is None
    assert found["boto3"] and ".venv" not in found["boto3"]  # the runtime's own copy
    assert found["aws_lambda_powertools"] is None  # no layer listed, no Powertools


def test_a_worker_gets_powertools_from_its_layer_folder_laid_out_as_opt_python(
    functions: LocalFunctions, tmp_path: Path
) -> None:
    _put(functions, tmp_path, layers=(POWERTOOLS,))
    result = functions.invoke("probe", {"modules": ["aws_lambda_powertools", "aws_xray_sdk"]})
    assert result.error is None, result.error
    for path in result.payload["found"].values():
        assert path and "/layers/aws-lambda-powertools-3.37.0-" in path and "/python/" in path


def test_a_worker_runs_under_the_interpreter_the_runtime_names_when_the_machine_has_it(
    functions: LocalFunctions, tmp_path: Path
) -> None:
    interpreter = find_interpreter("python3.13")
    _put(functions, tmp_path)
    result = functions.invoke("probe", {"modules": []})
    assert result.error is None, result.error
    assert result.payload["python"] == interpreter.version
    assert (interpreter.version == "3.13") == interpreter.exact


def test_the_newest_patch_release_in_pyenv_is_chosen_before_path(tmp_path: Path) -> None:
    for patch in ("9", "10"):
        fake = tmp_path / "pyenv" / "versions" / f"3.13.{patch}" / "bin" / "python3.13"
        fake.parent.mkdir(parents=True)
        fake.write_text("#!/bin/sh\n", encoding="utf-8")
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    found = find_interpreter("python3.13", search_path="", pyenv_root=tmp_path / "pyenv")
    assert found == Interpreter(path=fake, version="3.13", exact=True)


def test_without_the_runtimes_interpreter_the_current_one_runs_with_a_note(tmp_path: Path) -> None:
    found = find_interpreter("python3.99", search_path=str(tmp_path), pyenv_root=tmp_path)
    assert found.path == Path(sys.executable) and not found.exact
    assert found.note == (
        f"python3.99: python3.99 is not on PATH or in pyenv; functions run under "
        f"python{sys.version_info.major}.{sys.version_info.minor} instead"
    )


def test_the_fallback_note_is_logged_and_listed_as_not_emulated(tmp_path: Path) -> None:
    records: list[dict[str, object]] = []
    local = LocalFunctions(
        metrics=MetricStore(), region="us-east-1", account_id="1", base_environ={}, log_sink=records.append
    )
    try:
        local.sandboxes._interpreters["python3.13"] = Interpreter(
            path=Path(sys.executable), version="3.11", exact=False, note="python3.13: fallback"
        )
        _put(local, tmp_path)
        assert local.not_emulated == [("interpreter", "probe", "python3.13: fallback")]
        assert {
            "type": "note",
            "what": "interpreter",
            "where": "probe",
            "why": "python3.13: fallback",
        } in records
    finally:
        local.close()


def test_a_runtime_that_is_not_python_is_refused_with_one_line(
    functions: LocalFunctions, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="Runtime nodejs22.x cannot run locally"):
        _put(functions, tmp_path, runtime="nodejs22.x")


def test_a_layer_that_cannot_be_rebuilt_is_refused_with_one_line() -> None:
    with pytest.raises(
        UserError, match="layer arn:aws:lambda:us-east-1:1:layer:mine:3 cannot be loaded locally"
    ):
        layer_requirements("arn:aws:lambda:us-east-1:1:layer:mine:3")
    assert layer_requirements(POWERTOOLS)[0] == "aws-lambda-powertools==3.37.0"


def test_an_installed_folder_is_reused_without_running_pip_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(sandbox_module, "_pip_install", lambda _i, _r, target: calls.append(target))
    interpreter = Interpreter(path=Path(sys.executable), version="3.13", exact=True)
    first = install_folder("layers", ("a==1", "b==2"), interpreter, cache=tmp_path)
    second = install_folder("layers", ("a==1", "b==2"), interpreter, cache=tmp_path)
    assert first == second and len(calls) == 1 and (first / ".complete").exists()


def test_the_runtime_libraries_and_layer_extras_are_the_projects_pins() -> None:
    pins = {
        line.split("==")[0].lower().replace("_", "-"): line
        for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    }
    for requirement in (*LAMBDA_PYTHON_RUNTIME_LIBRARIES, *POWERTOOLS_LAYER_EXTRA_LIBRARIES):
        name = requirement.split("==")[0].lower().replace("_", "-")
        assert pins[name].lower().replace("_", "-") == requirement.lower().replace("_", "-")


def test_a_function_allocating_past_its_memory_fails_with_a_memory_error(
    functions: LocalFunctions, tmp_path: Path
) -> None:
    _put(functions, tmp_path, handler="probe.allocate", memory_mb=128)
    assert functions.invoke("probe", {"megabytes": 32}).payload == 32 * 1024 * 1024
    failed = functions.invoke("probe", {"megabytes": 1024})
    assert failed.error is not None and failed.error["errorType"] == "MemoryError"


def test_calls_beyond_a_functions_reserved_concurrency_are_throttled(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import time\n\ndef handler(event, context):\n    time.sleep(event['seconds'])\n    return 1\n",
        encoding="utf-8",
    )
    local = LocalFunctions(metrics=MetricStore(), region="us-east-1", account_id="1", base_environ={})
    try:
        local.put_function(
            FunctionConfig(name="slow", handler="slow.handler", code_dir=tmp_path, reserved_concurrency=1)
        )
        first = local.publish_version("slow")
        second = local.publish_version("slow")  # another version of the same function shares the limit
        busy = threading.Thread(
            target=local.invoke, args=("slow", {"seconds": 1}), kwargs={"qualifier": first}
        )
        busy.start()
        wait_for(lambda: local._busy.get("slow") == 1, what="the first call to start")
        assert local.invoke("slow", {"seconds": 0}, qualifier=second).throttled
        busy.join()
    finally:
        local.close()


def test_the_worker_orders_its_path_as_lambda_code_then_layers_then_stdlib_then_runtime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    here = str(Path(worker.__file__).parent)
    monkeypatch.setattr(sys, "path", [here, "/stdlib.zip", "/stdlib"])
    worker.set_sys_path("/var/task", ["/opt/python"], ["/var/runtime"])
    assert sys.path == ["/var/task", "/opt/python", "/stdlib.zip", "/stdlib", "/var/runtime"]


def test_the_worker_answers_requests_with_its_handlers_results_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "probe_inproc.py").write_text(
        PROBE + "\ndef boom(event, context):\n    raise KeyError('x')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "probe")
    for name in ("FUNCTION_VERSION", "FUNCTION_MEMORY_SIZE", "LOG_GROUP_NAME", "LOG_STREAM_NAME"):
        monkeypatch.setenv(f"AWS_LAMBDA_{name}", "x")
    request = {"event": {"megabytes": 1}, "request_id": "r", "invoked_function_arn": "a", "deadline_ms": 0}
    answers = []
    for handler in ("probe_inproc.allocate", "probe_inproc.boom", "probe_inproc.absent", "absent_module.fn"):
        outbound = io.BytesIO()
        worker.serve(handler, io.BytesIO(json.dumps(request).encode() + b"\n"), outbound)
        answers.append([json.loads(line) for line in outbound.getvalue().splitlines()])
    assert answers[0][1] == {"ok": True, "result": 1024 * 1024}
    assert [answer[1]["error"]["errorType"] for answer in answers[1:]] == [
        "KeyError",
        "Runtime.HandlerNotFound",
        "Runtime.ImportModuleError",
    ]


def test_an_environment_names_what_its_functions_do_not_do_as_on_lambda(
    fixture_env: LocalEnvironment,
) -> None:
    named = {what: why for what, _where, why in fixture_env.not_emulated}
    # Functions sign as their execution role now (ADR 0043); what IAM checks there and the local
    # cloud does not is named instead.
    assert "resource ARNs only for S3, SQS and DynamoDB" in named["IAM resources and conditions"]
    assert "not evaluated" in named["IAM resource policies"]
    assert "Architectures" in named
    assert "writing beside its code passes here" in named["code folder"]


def test_the_worker_entry_point_serves_from_its_code_folder_over_its_pipes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "probe_main.py").write_text(PROBE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in (
        "FUNCTION_NAME",
        "FUNCTION_VERSION",
        "FUNCTION_MEMORY_SIZE",
        "LOG_GROUP_NAME",
        "LOG_STREAM_NAME",
    ):
        monkeypatch.setenv(f"AWS_LAMBDA_{name}", "x")
    request = {"event": {"megabytes": 2}, "request_id": "r", "invoked_function_arn": "a", "deadline_ms": 0}
    requests_read, requests_write = os.pipe()
    responses_read, responses_write = os.pipe()
    os.write(requests_write, json.dumps(request).encode() + b"\n")
    os.close(requests_write)
    previous = signal.getsignal(signal.SIGINT)
    try:
        worker.main(
            ["--handler=probe_main.allocate", f"--in-fd={requests_read}", f"--out-fd={responses_write}"]
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    with os.fdopen(responses_read, "rb") as responses:
        lines = [json.loads(line) for line in responses.read().splitlines()]
    assert sys.path[0] == str(tmp_path)
    assert lines[0]["type"] == "ready" and lines[1] == {"ok": True, "result": 2 * 1024 * 1024}


def test_a_failed_install_says_what_failed_in_one_line_and_leaves_no_folder(tmp_path: Path) -> None:
    broken = Interpreter(path=Path("/bin/false"), version="3.13", exact=True)
    with pytest.raises(
        UserError, match=r"installing a==1 for python3.13 failed \(no output\); check that /bin/false"
    ):
        install_folder("layers", ("a==1",), broken, cache=tmp_path)
    assert not list((tmp_path / "layers").iterdir())
