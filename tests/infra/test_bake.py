"""The bake: the test build watches `<stack>-bake` as the TestRole; a failed stage rolls back (ADR 0018)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from pipeline import bake_watch
from pipeline.bake_watch import BakeSettings, CloudWatchAsTestRole, watch
from pipeline.buildspec_step import BUILDSPEC_DIR
from tests.infra.conftest import FIXTURE_CONTEXT, REGION, SINGLE_ACCOUNT_CONTEXT, Synth
from tests.infra.cross_account_support import render

SERVICE = FIXTURE_CONTEXT["serviceName"]
TEST_BUILDS = {"Staging": "IntegrationTests", "Production": "SmokeTests"}


def _stage(template: dict[str, Any], name: str) -> dict[str, Any]:
    (pipeline,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
    (stage,) = [s for s in pipeline["Properties"]["Stages"] if s["Name"] == name]
    return stage  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the pipeline


@pytest.mark.parametrize(
    "context", [FIXTURE_CONTEXT, SINGLE_ACCOUNT_CONTEXT], ids=["three-accounts", "one-account"]
)
@pytest.mark.parametrize("stage", ["Staging", "Production"])
def test_a_failed_environment_stage_rolls_back(synth: Synth, context: dict[str, Any], stage: str) -> None:
    found = _stage(synth(context).template_json, stage)
    assert found["OnFailure"] == {"Result": "ROLLBACK"}
    # No CloudWatchAlarm rule: it would read the alarm in the pipeline's account.
    assert "OnSuccess" not in found


@pytest.mark.parametrize(("stage", "environment"), [("Staging", "staging"), ("Production", "production")])
def test_the_test_build_is_told_which_alarm_to_bake_on_and_for_how_long(
    synth: Synth, stage: str, environment: str
) -> None:
    template = synth(FIXTURE_CONTEXT).template_json
    (action,) = [a for a in _stage(template, stage)["Actions"] if a["Name"] == TEST_BUILDS[stage]]
    variables = {
        v["name"]: v["value"] for v in json.loads(render(action["Configuration"]["EnvironmentVariables"]))
    }
    minutes = FIXTURE_CONTEXT[f"{environment}BakeMinutes"]
    assert variables["BAKE_ALARM_NAME"] == f"{SERVICE}-{environment}-bake"
    assert variables["BAKE_MINUTES"] == str(minutes)
    (project,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CodeBuild::Project"
        and r["Properties"]["Name"].endswith(TEST_BUILDS[stage].lower())
    ]
    assert project["Properties"]["TimeoutInMinutes"] >= 20 + minutes


@pytest.mark.parametrize(
    ("buildspec", "tests"), [("integration.yml", "make test-integration"), ("smoke.yml", "make smoke-test")]
)
def test_the_test_build_bakes_after_its_tests(buildspec: str, tests: str) -> None:
    commands = yaml.safe_load((BUILDSPEC_DIR / buildspec).read_text())["phases"]["build"]["commands"]
    assert commands.index("make bake") > commands.index(tests)


def test_the_pipeline_role_reads_no_alarm(synth: Synth) -> None:
    template = synth(FIXTURE_CONTEXT).template_json
    assert "cloudwatch:DescribeAlarms" not in json.dumps(template)


# ---------------------------------------------------------------- make bake


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("cloudwatch", region_name=REGION)
        # A metric alarm stands in for the composite one: moto has no PutCompositeAlarm.
        client.put_metric_alarm(
            AlarmName="payments-staging-bake",
            MetricName="Errors",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
        )
        yield client


class FakeClock:
    """Time that passes only when the bake waits (no real sleeping in tests)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits = 0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += seconds
        self.waits += 1


def _settings(**overrides: Any) -> BakeSettings:
    values: dict[str, Any] = {
        "alarm_name": "payments-staging-bake",
        "minutes": 10,
        "minute_seconds": 60.0,
        "role_arn": "",
        "offline": False,
        **overrides,
    }
    return BakeSettings(**values)


def test_a_bake_passes_when_the_alarm_stays_out_of_alarm_for_the_bake_minutes(cloudwatch: Any) -> None:
    clock = FakeClock()
    cloudwatch.set_alarm_state(AlarmName="payments-staging-bake", StateValue="OK", StateReason="quiet")
    result = watch(_settings(), lambda: cloudwatch, clock=clock, wait=clock.wait)
    assert result.passed
    assert clock.now >= 600
    assert clock.waits == 600 / 15  # polls every quarter of a pipeline minute


def test_a_bake_fails_as_soon_as_the_alarm_is_in_alarm(cloudwatch: Any) -> None:
    clock = FakeClock()
    cloudwatch.set_alarm_state(
        AlarmName="payments-staging-bake", StateValue="ALARM", StateReason="errors fired"
    )
    result = watch(_settings(), lambda: cloudwatch, clock=clock, wait=clock.wait)
    assert not result.passed
    assert result.message == "alarm payments-staging-bake went to ALARM during the bake: errors fired"
    assert clock.waits == 0


def test_a_bake_on_an_alarm_that_does_not_exist_fails_with_the_fix(cloudwatch: Any) -> None:
    clock = FakeClock()
    result = watch(_settings(alarm_name="nothing-bake"), lambda: cloudwatch, clock=clock, wait=clock.wait)
    assert not result.passed
    assert "alarm nothing-bake does not exist: deploy the stack that defines it first" in result.message


def test_the_bake_reads_the_alarm_as_the_test_role(cloudwatch: Any) -> None:
    role = boto3.client("iam").create_role(
        RoleName="payments-staging-TestRole-X", AssumeRolePolicyDocument="{}"
    )
    reader = CloudWatchAsTestRole(_settings(role_arn=role["Role"]["Arn"]), boto3.session.Session)
    client = reader.client()
    assert client is reader.client()  # one session until it nears its end
    assert client.describe_alarms(AlarmNames=["payments-staging-bake"])["MetricAlarms"]


def test_a_pipeline_minute_is_shorter_offline() -> None:
    settings = BakeSettings.from_environ(
        {
            "BAKE_ALARM_NAME": "a",
            "BAKE_MINUTES": "5",
            "PIPELINE_MINUTE_SECONDS": "0.5",
            "AWS_ENDPOINT_URL": "x",
        }
    )
    assert (settings.seconds, settings.offline) == (2.5, True)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "make bake: BAKE_ALARM_NAME is not set: run make bake BAKE_ALARM_NAME=<stack>-bake"),
        ({"BAKE_ALARM_NAME": "a"}, "make bake: BAKE_MINUTES='' is not valid: set it to a number of minutes"),
        ({"BAKE_ALARM_NAME": "a", "BAKE_MINUTES": "x"}, "make bake: BAKE_MINUTES='x' is not valid"),
    ],
)
def test_missing_bake_settings_end_with_one_line_and_exit_code_2(
    environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bake_watch.main(environ) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)


def test_a_bake_that_cannot_reach_cloudwatch_fails_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "b",
        "AWS_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    environ = {"BAKE_ALARM_NAME": "a-bake", "BAKE_MINUTES": "1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")

    assert bake_watch.main(environ) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("make bake: cannot read alarm a-bake: Could not connect")


def test_make_bake_exits_1_with_the_reason_when_the_alarm_fired(
    cloudwatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cloudwatch.set_alarm_state(
        AlarmName="payments-staging-bake", StateValue="ALARM", StateReason="errors fired"
    )
    assert bake_watch.main({"BAKE_ALARM_NAME": "payments-staging-bake", "BAKE_MINUTES": "1"}) == 1
    assert "went to ALARM during the bake: errors fired" in capsys.readouterr().err
