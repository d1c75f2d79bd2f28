"""The local Lambda runtime: workers, cold and warm starts, timeouts, versions, aliases, metrics."""

from __future__ import annotations

import os
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rehearsal.alarms.metrics import MetricKey, MetricStore, dimensions
from rehearsal.runtime.functions import FunctionConfig, FunctionNotFoundError, LocalFunctions

CODE = Path(__file__).parent / "fixtures" / "app" / "src"


@pytest.fixture
def functions() -> Iterator[LocalFunctions]:
    local = LocalFunctions(
        metrics=MetricStore(), region="us-east-1", account_id="123456789012", base_environ={}
    )
    try:
        yield local
    finally:
        local.close()


def _put(functions: LocalFunctions, name: str, handler: str, **settings: object) -> str:
    functions.put_function(
        FunctionConfig(name=name, handler=f"fixture_app.{handler}", code_dir=CODE, **settings)
    )  # type: ignore[arg-type]
    return functions.publish_version(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_first_call_is_a_cold_start_and_later_calls_reuse_the_warm_worker(functions: LocalFunctions) -> None:
    version = _put(functions, "echo", "api.echo", environment={"GREETING": "hi"}, memory_mb=256)

    first = functions.invoke("echo", {"raw": True}, qualifier=version)
    second = functions.invoke("echo", {"raw": True}, qualifier=version)

    assert first.init_ms is not None and first.payload["cold"] is True
    assert second.init_ms is None and second.payload["cold"] is False
    assert first.payload["pid"] == second.payload["pid"]
    assert first.payload["env"]["GREETING"] == "hi"
    assert first.payload["memory"] == "256"
    assert first.payload["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo:1"
    assert 0 < first.payload["remainingMs"] <= 3000


def test_a_call_past_the_timeout_kills_its_worker_and_fails_as_a_timeout(functions: LocalFunctions) -> None:
    _put(functions, "slow", "api.slow", timeout=0.3)
    result = functions.invoke("slow", {"queryStringParameters": {"seconds": "5"}}, qualifier="1")

    assert result.timed_out and result.error is not None
    assert result.error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.30 seconds" in result.error["errorMessage"]
    assert 250 <= result.duration_ms < 2000
    quick = functions.invoke("slow", {"queryStringParameters": {"seconds": "0"}}, qualifier="1")
    assert quick.init_ms is not None, "a new worker (a cold start) replaces the killed one"
    assert not quick.failed


def test_the_killed_worker_process_is_gone(functions: LocalFunctions) -> None:
    _put(functions, "echo", "api.echo")
    pid = functions.invoke("echo", {"raw": True}).payload["pid"]
    _put(functions, "slow", "api.slow", timeout=0.2)
    functions.invoke("slow", {"queryStringParameters": {"seconds": "5"}}, qualifier="1")
    functions.close()
    assert not _alive(pid)


def test_the_live_alias_splits_traffic_by_weight(functions: LocalFunctions) -> None:
    old = _put(functions, "echo", "api.echo")
    new = functions.publish_version("echo")
    functions.set_alias("echo", "live", {old: 0.9, new: 0.1})

    executed = [
        functions.invoke("echo", {"raw": True}, qualifier="live").executed_version for _ in range(1000)
    ]

    share_of_new = executed.count(new) / len(executed)
    assert 0.07 <= share_of_new <= 0.13
    assert set(executed) == {old, new}
    assert functions.alias_routing("echo", "live") == {old: 0.9, new: 0.1}


def test_every_call_records_lambda_metrics_with_aws_dimensions(functions: LocalFunctions) -> None:
    version = _put(functions, "boom", "api.boom")
    functions.set_alias("boom", "live", {version: 1.0})

    functions.invoke("arn:aws:lambda:us-east-1:123456789012:function:boom:live", {})

    by_version = dimensions({"FunctionName": "boom", "Resource": "boom:live", "ExecutedVersion": version})
    store = functions.metrics
    assert store.values(MetricKey("AWS/Lambda", "Invocations", by_version), 0, 2e10) == [1]
    assert store.values(MetricKey("AWS/Lambda", "Errors", by_version), 0, 2e10) == [1]
    assert len(store.values(MetricKey("AWS/Lambda", "Duration", by_version), 0, 2e10)) == 1
    assert store.values(MetricKey("AWS/Lambda", "Errors", dimensions({"FunctionName": "boom"})), 0, 2e10) == [
        1
    ]
    assert store.values(MetricKey("AWS/Lambda", "Errors", dimensions({})), 0, 2e10) == [1]


def test_calls_beyond_the_concurrency_limit_are_throttled_and_counted() -> None:
    functions = LocalFunctions(
        metrics=MetricStore(),
        region="us-east-1",
        account_id="123456789012",
        base_environ={},
        max_concurrency=1,
    )
    try:
        _put(functions, "slow", "api.slow", timeout=5)
        results = []
        background = threading.Thread(
            target=lambda: results.append(
                functions.invoke("slow", {"queryStringParameters": {"seconds": "1"}})
            )
        )
        background.start()
        while background.is_alive() and not any(result.throttled for result in results):
            results.append(functions.invoke("slow", {"queryStringParameters": {"seconds": "0"}}))
        background.join()
        throttled = [result for result in results if result.throttled]
        assert throttled, "one of two overlapping calls must be throttled at concurrency 1"
        throttles = MetricKey("AWS/Lambda", "Throttles", dimensions({"FunctionName": "slow"}))
        assert len(functions.metrics.values(throttles, 0, 2e10)) == len(throttled)
    finally:
        functions.close()


@pytest.mark.parametrize(
    ("handler", "error_type"),
    [
        ("broken.handler", "Runtime.ImportModuleError"),
        ("api.missing", "Runtime.HandlerNotFound"),
        ("api.boom", "RuntimeError"),
        ("api.unserialisable", "Runtime.MarshalError"),
        ("api.crash", "Runtime.ExitError"),
    ],
)
def test_function_failures_are_reported_with_lambdas_error_types(
    functions: LocalFunctions, handler: str, error_type: str
) -> None:
    _put(functions, "fn", handler)
    result = functions.invoke("fn", {})
    assert result.error is not None and result.error["errorType"] == error_type


def test_embedded_metric_format_lines_become_metrics(functions: LocalFunctions) -> None:
    _put(functions, "emf", "api.metrics")
    functions.invoke("emf", {})
    functions.close()  # joins the log reader, so the line has been read
    key = MetricKey("FixtureApp", "ItemsCreated", dimensions({"service": "fixture"}))
    assert functions.metrics.values(key, 0, 2e10) == [2.0]


def test_a_version_can_be_published_from_a_zip(functions: LocalFunctions, tmp_path: Path) -> None:
    _put(functions, "echo", "api.echo")
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in (CODE / "fixture_app").glob("*.py"):
            bundle.write(path, f"fixture_app/{path.name}")
    version = functions.publish_version("echo", code=archive, environment={"GREETING": "from-zip"})
    result = functions.invoke("echo", {"raw": True}, qualifier=version)
    assert result.payload["env"]["GREETING"] == "from-zip"
    assert functions.version_config("echo", version).code_dir != CODE
    assert functions.versions("echo") == ["1", "2"]
    assert functions.function_names() == ["echo"]


def test_unknown_functions_versions_and_aliases_are_not_found(functions: LocalFunctions) -> None:
    _put(functions, "echo", "api.echo")
    with pytest.raises(FunctionNotFoundError):
        functions.invoke("nope", {})
    with pytest.raises(FunctionNotFoundError):
        functions.invoke("echo", {}, qualifier="9")
    with pytest.raises(FunctionNotFoundError):
        functions.invoke("echo", {}, qualifier="live")
    with pytest.raises(ValueError, match="sum to 1"):
        functions.set_alias("echo", "live", {"1": 0.5})


def test_closing_without_owning_the_work_dir_keeps_it(tmp_path: Path) -> None:
    functions = LocalFunctions(
        metrics=MetricStore(), region="us-east-1", account_id="1", base_environ={}, work_dir=tmp_path
    )
    functions.close()
    assert tmp_path.exists()
    shutil.rmtree(tmp_path)
