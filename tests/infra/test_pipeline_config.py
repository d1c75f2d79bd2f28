"""Pipeline settings: validation with one-line errors, example-value refusal, and the AWS edges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from moto import mock_aws

from pipeline import bootstrap, preflight
from pipeline.config import ConfigError, ExecutionMode, PipelineConfig
from pipeline.nag import acknowledge
from tests.infra.conftest import FIXTURE_CONTEXT, ROOT, SINGLE_ACCOUNT_CONTEXT

# The shipped example accounts and connection, which `make deploy` and `make bootstrap` refuse.
EXAMPLE_VALUES = {
    "pipelineAccount": "111111111111",
    "stagingAccount": "222222222222",
    "productionAccount": "333333333333",
    "connectionArn": "arn:aws:codeconnections:eu-central-1:111111111111:connection/"
    "00000000-0000-0000-0000-000000000000",
}


def _config(**overrides: Any) -> PipelineConfig:
    return PipelineConfig.from_context({**FIXTURE_CONTEXT, **overrides})


def test_the_teams_cdk_json_parses_into_a_valid_config() -> None:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    config = PipelineConfig.from_context(context)
    assert config.service_name == context["serviceName"]


def test_the_fixture_builds_a_three_account_config_with_its_own_values() -> None:
    config = _config()
    assert config.staging.canary_type == FIXTURE_CONTEXT["stagingCanaryType"]
    assert config.production.canary_type == FIXTURE_CONTEXT["productionCanaryType"]
    assert config.execution_mode is ExecutionMode.QUEUED
    assert config.is_cross_account
    assert config.pipeline_name == f"{FIXTURE_CONTEXT['serviceName']}-release"


def test_one_account_for_everything_is_not_cross_account() -> None:
    assert not PipelineConfig.from_context(SINGLE_ACCOUNT_CONTEXT).is_cross_account


def test_command_line_overrides_arrive_as_strings_and_are_parsed() -> None:
    config = _config(
        releaseManagerEmails="a@example.com, b@example.com", stagingBakeMinutes="7", executionMode="QUEUED"
    )
    assert config.release_manager_emails == ("a@example.com", "b@example.com")
    assert config.staging.bake_minutes == 7
    assert config.execution_mode is ExecutionMode.QUEUED


def test_defaults_fill_optional_keys() -> None:
    context = {
        k: v
        for k, v in FIXTURE_CONTEXT.items()
        if k not in {"stagingCanaryType", "notificationEmails", "bakeAlarmName", "executionMode"}
    }
    config = PipelineConfig.from_context(context)
    assert config.staging.canary_type == "Canary10Percent5Minutes"
    assert config.notification_emails == config.release_manager_emails
    assert config.production.bake_alarm_name == f"{FIXTURE_CONTEXT['serviceName']}-production-bake"
    assert config.execution_mode is ExecutionMode.SUPERSEDED


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "pipelineAccount",
            "12345",
            "pipelineAccount='12345' is not valid: set it to a 12-digit AWS account id",
        ),
        (
            "stagingCanaryType",
            "Canary50Percent1Minute",
            "stagingCanaryType='Canary50Percent1Minute' is not valid",
        ),
        ("connectionArn", "arn:aws:s3:::bucket", "connectionArn='arn:aws:s3:::bucket' is not valid"),
        ("approverPrincipals", [], "approverPrincipals is empty"),
        ("approverPrincipals", ["someone"], "approverPrincipals contains 'someone'"),
        ("releaseManagerEmails", ["not-an-email"], "releaseManagerEmails contains 'not-an-email'"),
        ("executionMode", "PARALLEL", "executionMode='PARALLEL' is not valid: use SUPERSEDED or QUEUED"),
        ("productionRegion", "us-east-1", "productionRegion is us-east-1 but pipelineRegion is eu-central-1"),
        ("productionBakeMinutes", "soon", "productionBakeMinutes='soon' is not valid"),
        (
            "reviewUrl",
            "https://github.com/acme-corp/payments-service/commits/release",
            "reviewUrl='https://github.com/acme-corp/payments-service/commits/release' is not valid: "
            "set it to an https:// URL naming the commit with {commitId}",
        ),
        ("triggerFilePathsExcluded", 3, "triggerFilePathsExcluded=3 is not valid"),
        ("serviceName", None, "serviceName is not set: add it to the context in cdk.json"),
    ],
)
def test_a_wrong_value_names_its_key_and_the_fix(key: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _config(**{key: value})
    assert str(raised.value).startswith(expected)
    assert "\n" not in str(raised.value)


def test_deploy_refuses_the_shipped_example_values() -> None:
    with pytest.raises(ConfigError, match=r"^pipelineAccount still holds the shipped example value"):
        _config(**EXAMPLE_VALUES).check_deployable()


def test_deploy_accepts_real_values() -> None:
    real = _config()
    real.check_deployable()
    assert real.example_values_in_use() == []


def test_bad_context_ends_synth_with_one_line_and_exit_code_2(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({**FIXTURE_CONTEXT, "stagingAccount": "abc"}),
        "CDK_OUTDIR": str(tmp_path),
    }
    result = subprocess.run(  # fixed arguments
        [sys.executable, "-m", "pipeline.app"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cdk.json: stagingAccount='abc' is not valid: set it to a 12-digit AWS account id"
    ]


def test_acknowledging_a_whole_stack_is_refused() -> None:
    with pytest.raises(ValueError, match="on a resource"):
        acknowledge(Stack(), rule="AwsSolutions::AwsSolutions-IAM5", reason="would hide every future finding")


# Every place botocore finds credentials, CodeBuild's container endpoint included: inside the
# pipeline's Build the build role's credentials must not count as "signed in" for these tests.
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)


def _without_credentials(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _without_credentials(monkeypatch, tmp_path)


def test_codebuilds_container_credentials_do_not_reach_the_no_credentials_tests(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import botocore.session  # noqa: PLC0415 - only this test asks botocore directly

    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/build-role")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "token")
    _without_credentials(monkeypatch, tmp_path)
    assert botocore.session.Session().get_credentials() is None


@pytest.mark.usefixtures("no_credentials")
def test_preflight_without_credentials_stops_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert preflight.main() == 2
    assert capsys.readouterr().err.strip() == preflight.NO_CREDENTIALS


@mock_aws
def test_preflight_with_credentials_names_the_account(capsys: pytest.CaptureFixture[str]) -> None:
    assert preflight.main() == 0
    assert "Using AWS account 123456789012" in capsys.readouterr().out


def test_bootstrap_refuses_the_shipped_example_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bootstrap, "load_config", lambda: _config(**EXAMPLE_VALUES))
    assert bootstrap.main() == 2
    assert "still holds the shipped example value" in capsys.readouterr().err
