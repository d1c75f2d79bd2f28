"""The alarm evaluator: statistics, percentiles, metric math, M of N, missing data, time compression."""

from __future__ import annotations

from typing import Any

import pytest

from rehearsal.alarms.evaluator import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmDefinition,
    AlarmEvaluator,
    UnsupportedAlarmError,
)
from rehearsal.alarms.metrics import MetricStore, compute_statistic
from rehearsal.base.clock import TimeScale
from rehearsal.runtime.environment import LocalEnvironment

NOW = 1_000_000.0
ERRORS = {"Name": "FunctionName", "Value": "fn"}


def _alarm(**overrides: Any) -> AlarmDefinition:
    properties = {
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Dimensions": [ERRORS],
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 0,
        "ComparisonOperator": "GreaterThanThreshold",
        **overrides,
    }
    return AlarmDefinition.from_properties("ErrorsAlarm", properties)


def _errors(store: MetricStore, *values_and_ages: tuple[float, float]) -> None:
    for value, age in values_and_ages:
        store.put("AWS/Lambda", "Errors", {"FunctionName": "fn"}, value, timestamp=NOW - age)


def test_a_breaching_datapoint_moves_the_alarm_to_alarm_and_back_to_ok() -> None:
    store = MetricStore()
    evaluator = AlarmEvaluator([_alarm(TreatMissingData="notBreaching")], store)
    _errors(store, (1, 10))

    changes = evaluator.evaluate(NOW)
    assert [(change.old_state, change.new_state) for change in changes] == [(INSUFFICIENT_DATA, ALARM)]
    assert "1 of the last 1 datapoints" in changes[0].reason
    assert evaluator.in_alarm() == ["ErrorsAlarm"]

    later = evaluator.evaluate(NOW + 120)
    assert [(change.old_state, change.new_state) for change in later] == [(ALARM, OK)]
    assert evaluator.evaluate(NOW + 180) == [], "no change, no report"


@pytest.mark.parametrize(
    ("treatment", "state"),
    [
        ("missing", INSUFFICIENT_DATA),
        ("notBreaching", OK),
        ("breaching", ALARM),
        ("ignore", INSUFFICIENT_DATA),
    ],
)
def test_missing_data_is_treated_as_the_alarm_says(treatment: str, state: str) -> None:
    evaluator = AlarmEvaluator([_alarm(TreatMissingData=treatment)], MetricStore())
    evaluator.evaluate(NOW)
    assert evaluator.states["ErrorsAlarm"] == state


def test_ignore_keeps_the_last_state_when_data_stops() -> None:
    store = MetricStore()
    evaluator = AlarmEvaluator([_alarm(TreatMissingData="ignore")], store)
    _errors(store, (3, 5))
    evaluator.evaluate(NOW)
    assert evaluator.evaluate(NOW + 600) == []
    assert evaluator.states["ErrorsAlarm"] == ALARM


def test_datapoints_to_alarm_needs_m_of_n_breaching_periods() -> None:
    store = MetricStore()
    alarm = _alarm(EvaluationPeriods=3, DatapointsToAlarm=2, TreatMissingData="notBreaching")
    evaluator = AlarmEvaluator([alarm], store)
    _errors(store, (1, 150))
    evaluator.evaluate(NOW)
    assert evaluator.states["ErrorsAlarm"] == OK
    _errors(store, (1, 30))
    evaluator.evaluate(NOW)
    assert evaluator.states["ErrorsAlarm"] == ALARM


def test_percentile_statistics_are_computed_from_the_raw_values() -> None:
    store = MetricStore()
    for value in range(1, 101):
        store.put("AWS/ApiGateway", "Latency", {"ApiName": "a"}, float(value), timestamp=NOW - 1)
    alarm = AlarmDefinition.from_properties(
        "Latency",
        {
            "Namespace": "AWS/ApiGateway",
            "MetricName": "Latency",
            "Dimensions": [{"Name": "ApiName", "Value": "a"}],
            "ExtendedStatistic": "p99",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 98.5,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    )
    evaluator = AlarmEvaluator([alarm], store)
    assert evaluator.datapoints(alarm, NOW) == [99.0]
    evaluator.evaluate(NOW)
    assert evaluator.states["Latency"] == ALARM
    assert compute_statistic("Average", [1, 2, 3]) == 2
    assert compute_statistic("SampleCount", [5, 5]) == 2
    assert compute_statistic("Minimum", [4, 2]) == 2
    assert compute_statistic("Maximum", [4, 2]) == 4
    assert compute_statistic("p50", []) is None
    with pytest.raises(ValueError, match="unsupported statistic"):
        compute_statistic("tm90", [1.0])


def _rate_alarm(expression: str = "100 * FILL(errors, 0) / invocations") -> AlarmDefinition:
    def metric(metric_id: str, name: str) -> dict[str, Any]:
        return {
            "Id": metric_id,
            "ReturnData": False,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": [ERRORS]},
                "Period": 60,
                "Stat": "Sum",
            },
        }

    return AlarmDefinition.from_properties(
        "Rate",
        {
            "EvaluationPeriods": 1,
            "Threshold": 10,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Metrics": [
                {"Id": "rate", "Expression": expression, "ReturnData": True},
                metric("errors", "Errors"),
                metric("invocations", "Invocations"),
            ],
        },
    )


def test_metric_math_computes_an_error_rate() -> None:
    store = MetricStore()
    for index in range(10):
        store.put("AWS/Lambda", "Invocations", {"FunctionName": "fn"}, 1, timestamp=NOW - 5 - index)
    evaluator = AlarmEvaluator([_rate_alarm()], store)
    assert evaluator.datapoints(evaluator.alarms[0], NOW) == [0.0], "FILL turns missing errors into 0"
    _errors(store, (1, 2))
    assert evaluator.datapoints(evaluator.alarms[0], NOW) == [10.0]
    assert _rate_alarm("-errors / (invocations - invocations)").queries[0].expression
    assert evaluator.datapoints(_rate_alarm("-errors / (invocations - invocations)"), NOW) == [None]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"}, "anomaly"),
        ({"Metrics": [{"Id": "a", "Expression": "ANOMALY_DETECTION_BAND(m)"}]}, "only FILL"),
        ({"Metrics": [{"Id": "a", "Expression": "m["}]}, "not understood"),
        ({"Metrics": [{"Id": "a", "Expression": "m % 2"}]}, "not emulated"),
        ({"Metrics": [{"Id": "a", "Expression": "1", "ReturnData": False}]}, "exactly one"),
    ],
)
def test_alarms_it_cannot_emulate_are_refused_with_the_reason(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsupportedAlarmError, match=message):
        _alarm(**overrides)


def test_time_compression_shrinks_the_period() -> None:
    store = MetricStore()
    evaluator = AlarmEvaluator(
        [_alarm(TreatMissingData="notBreaching")],
        store,
        time_scale=TimeScale(seconds_per_minute=3),
        clock=lambda: NOW,
    )
    _errors(store, (1, 5))  # 5 s ago: outside a 3 s compressed period
    evaluator.evaluate()
    assert evaluator.states["ErrorsAlarm"] == OK
    _errors(store, (1, 1))
    evaluator.evaluate()
    assert evaluator.states["ErrorsAlarm"] == ALARM


def test_the_templates_alarms_are_scoped_to_the_published_version(fixture_env: LocalEnvironment) -> None:
    evaluator, alarms = fixture_env.alarm_evaluator()
    assert alarms.problems == ()
    names = fixture_env.stack.resolver.refs  # CloudWatch knows an alarm by its physical name
    by_name = {alarm.name: alarm for alarm in evaluator.alarms}
    errors = by_name[names["EchoErrorsAlarm"]]
    key = errors.queries[0].key
    assert key is not None
    echo = fixture_env.stack.functions["EchoFunction"].name
    assert dict(key.dimensions) == {"FunctionName": echo, "Resource": f"{echo}:live", "ExecutedVersion": "1"}
    assert set(by_name) >= {
        names[logical_id] for logical_id in ("ErrorRateAlarm", "LatencyAlarm", "DeadLettersAlarm")
    }
