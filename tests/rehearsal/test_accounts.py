"""Accounts and regions as synthesized (ADR 0049): where the runner runs each action, build and rule,
and what the local clouds of three accounts let a build or a rule see.

The runner tests edit the fixture pipeline into three accounts (the manifest's environment, the deploy
actions' `RoleArn` and `Region`) and release it with the in-memory deployer; the deployer tests deploy
the fixture app into two accounts' local clouds, and into one shared by both environments.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from rehearsal.base.aws import DEFAULT_PLACE, AccountRegion, account_of_arn, place_of_cdk_environment
from rehearsal.base.clock import TimeScale
from rehearsal.cloud.template import load_template
from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.release.deploy_port import DeployRequest
from tests.rehearsal.release_support import InMemoryDeployer, commit, make_project, run_release
from tests.rehearsal.test_runner import edit_pipeline, summary_of

PIPELINE = AccountRegion(account_id="444455556666", region="eu-central-1")
STAGING = AccountRegion(account_id="555566667777", region="eu-central-1")
PRODUCTION = AccountRegion(account_id="666677778888", region="eu-west-1")
MANIFEST = "pipeline-assembly/manifest.json"
FIXTURE_APP = Path(__file__).parent / "fixtures" / "app"
TIME_SCALE = TimeScale(seconds_per_minute=0.2)


# ---------------------------------------------------------------- reading places


def test_a_manifest_environment_names_the_account_and_region_and_an_agnostic_one_gets_the_defaults() -> None:
    assert place_of_cdk_environment("aws://555566667777/eu-central-1") == STAGING
    assert place_of_cdk_environment("aws://unknown-account/unknown-region") == DEFAULT_PLACE
    partial = place_of_cdk_environment("aws://555566667777/unknown-region")
    assert partial == AccountRegion(account_id=STAGING.account_id, region=DEFAULT_PLACE.region)


def test_an_arn_names_its_account_and_an_unresolved_reference_names_none() -> None:
    assert account_of_arn(_deploy_role(STAGING)) == STAGING.account_id
    assert account_of_arn("arn:aws:sqs:eu-west-1:666677778888:queue") == PRODUCTION.account_id
    assert account_of_arn("PipelineRole.Arn") is None
    assert account_of_arn("arn:aws:s3:::bucket") is None


# ---------------------------------------------------------------- the runner: where each part runs


def _deploy_role(place: AccountRegion) -> str:
    return f"arn:aws:iam::{place.account_id}:role/cdk-hnb659fds-deploy-role-{place.account_id}-{place.region}"


def _in_three_accounts(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
    """Staging and production deploy through a role of their own account, in their region (as CDK
    renders a cross-account CloudFormation action)."""
    for stage in stages:
        place = {"Staging": STAGING, "Production": PRODUCTION}.get(stage["Name"])
        for action in stage["Actions"]:
            if place is not None and action["ActionTypeId"]["Provider"] == "CloudFormation":
                action["RoleArn"] = _deploy_role(place)
                action["Region"] = place.region


def _three_account_files(repo: Path, extra: Any = None) -> dict[str, str]:
    def change(stages: list[dict[str, Any]], template: dict[str, Any]) -> None:
        _in_three_accounts(stages, template)
        if extra is not None:
            extra(stages, template)

    manifest = json.loads((repo / MANIFEST).read_text())
    manifest["artifacts"]["OrdersPipeline"]["environment"] = f"aws://{PIPELINE.account_id}/{PIPELINE.region}"
    return {MANIFEST: json.dumps(manifest, indent=1), **edit_pipeline(repo, change)}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def test_deploys_builds_and_rules_run_in_the_account_and_region_the_pipeline_names(repo: Path) -> None:
    commit(repo, "three accounts", _three_account_files(repo))
    deployer = InMemoryDeployer()

    result = run_release(repo, deployer)

    assert result.succeeded, summary_of(repo)["message"]
    assert [(r.environment, r.place) for r in deployer.requests] == [
        ("staging", STAGING),
        ("production", PRODUCTION),
    ]
    # Build/Synth in the pipeline's account; Staging/IntegrationTests after staging's deploy, in staging's.
    assert deployer.build_places == [PIPELINE, STAGING]
    # The Staging OnSuccess alarm rule runs as the pipeline, in its account and region.
    assert deployer.rule_places == [PIPELINE]
    pipeline = summary_of(repo)["pipeline"]
    assert (pipeline["account"], pipeline["region"]) == (PIPELINE.account_id, PIPELINE.region)
    assert pipeline["environments"] == {
        "staging": {"account": STAGING.account_id, "region": STAGING.region},
        "production": {"account": PRODUCTION.account_id, "region": PRODUCTION.region},
    }
    facts = {(f["what"], f["where"]) for f in summary_of(repo)["not_emulated"]}
    assert (f"role assumption into {STAGING}", "Staging/IntegrationTests") in facts


def test_a_stage_rule_running_as_a_role_of_another_account_fails_the_stage_closed_in_one_line(
    repo: Path,
) -> None:
    def rule_role_in_staging(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        staging = next(s for s in stages if s["Name"] == "Staging")
        (rule,) = staging["OnSuccess"]["Conditions"][0]["Rules"]
        rule["RoleArn"] = f"arn:aws:iam::{STAGING.account_id}:role/AlarmReader"

    commit(repo, "read the bake alarm in staging's account", _three_account_files(repo, rule_role_in_staging))
    deployer = InMemoryDeployer()

    result = run_release(repo, deployer)

    summary = summary_of(repo)
    assert not result.succeeded
    assert summary["failed_stage"] == "Staging"
    assert "\n" not in summary["message"]
    assert summary["message"].startswith("OnSuccess rule Bake: rule Bake runs as ")
    assert f"a role in account {STAGING.account_id}" in summary["message"]
    assert "fails closed" in summary["message"]
    assert deployer.rule_places == []  # never evaluated on an assumption
    assert "production" not in deployer.serving


def test_a_change_set_is_executed_only_in_the_account_it_was_created_in(repo: Path) -> None:
    def execute_elsewhere(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        staging = next(s for s in stages if s["Name"] == "Staging")
        execute = next(a for a in staging["Actions"] if a["Name"] == "Execute")
        execute["RoleArn"] = _deploy_role(PRODUCTION)

    commit(repo, "execute in the wrong account", _three_account_files(repo, execute_elsewhere))

    result = run_release(repo, InMemoryDeployer())

    summary = summary_of(repo)
    assert not result.succeeded
    assert summary["failed_stage"] == "Staging"
    # The execute action runs as production's role in staging's region: no change set of that stack there.
    elsewhere = AccountRegion(account_id=PRODUCTION.account_id, region=STAGING.region)
    assert summary["message"].startswith(
        f"Execute: no change set PipelineChange for stack orders-staging in {elsewhere}"
    )


# ---------------------------------------------------------------- the deployer: clouds per account


def _fixture_template(root: Path) -> Path:
    """The fixture app as a packaged template whose code is a local folder (no artifact bucket needed)."""
    document: dict[str, Any] = load_template(FIXTURE_APP / "template.yaml")
    for resource in document["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = str(FIXTURE_APP / "src")
    path = root / "packaged.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _deploy(deployer: LocalDeployer, template: Path, environment: str, place: AccountRegion) -> None:
    outcome = deployer.deploy(
        DeployRequest(
            environment=environment,
            stack_name=f"fixture-{environment}",
            template=template,
            artifacts={},
            parameters={"Environment": environment},
            capabilities=("CAPABILITY_IAM",),
            commit=f"{environment}-1",
            log=io.StringIO(),
            place=place,
        )
    )
    assert outcome.succeeded, outcome.message


@pytest.fixture(scope="module")
def two_accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployer]:
    """Staging and production of the fixture app, each in its own account's local cloud."""
    root = tmp_path_factory.mktemp("accounts")
    deployer = LocalDeployer(root / "state", TIME_SCALE)
    try:
        template = _fixture_template(root)
        _deploy(deployer, template, "staging", STAGING)
        _deploy(deployer, template, "production", PRODUCTION)
        yield deployer
    finally:
        deployer.close()
        shutil.rmtree(root, ignore_errors=True)


def _session(environ: dict[str, str] | Any) -> tuple[boto3.session.Session, str]:
    session = boto3.session.Session(
        aws_access_key_id=environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environ["AWS_SECRET_ACCESS_KEY"],
        region_name=environ["AWS_REGION"],
    )
    return session, environ["AWS_ENDPOINT_URL"]


def test_each_environment_runs_in_a_local_cloud_answering_as_its_account_and_region(
    two_accounts: LocalDeployer,
) -> None:
    for name, place in (("staging", STAGING), ("production", PRODUCTION)):
        session, endpoint = _session(two_accounts.build_environment(place))
        identity = session.client("sts", endpoint_url=endpoint).get_caller_identity()
        assert identity["Account"] == place.account_id
        assert session.region_name == place.region
        assert two_accounts.running[name].local.cloud.place == place
    assert two_accounts.running["staging"].local.cloud is not two_accounts.running["production"].local.cloud


def test_an_environments_outputs_and_arns_carry_its_account_and_region(two_accounts: LocalDeployer) -> None:
    local = two_accounts.running["production"].local
    outputs = local.outputs()
    assert f"/{PRODUCTION.account_id}/" in outputs["WorkQueueUrl"]
    sqs = local.cloud.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=outputs["WorkQueueUrl"], AttributeNames=["QueueArn"])
    assert queue_arn["Attributes"]["QueueArn"].startswith(
        f"arn:aws:sqs:{PRODUCTION.region}:{PRODUCTION.account_id}:"
    )
    table = local.cloud.client("dynamodb").describe_table(TableName=outputs["ItemsTableName"])
    assert f":{PRODUCTION.account_id}:table/" in table["Table"]["TableArn"]
    topics = [t["TopicArn"] for t in local.cloud.client("sns").list_topics()["Topics"]]
    assert topics and all(
        t.startswith(f"arn:aws:sns:{PRODUCTION.region}:{PRODUCTION.account_id}:") for t in topics
    )


def test_a_build_after_the_staging_deploy_cannot_read_production_in_another_account(
    two_accounts: LocalDeployer,
) -> None:
    production_table = two_accounts.running["production"].local.outputs()["ItemsTableName"]
    staging_table = two_accounts.running["staging"].local.outputs()["ItemsTableName"]
    session, endpoint = _session(two_accounts.build_environment(STAGING))
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)

    assert dynamodb.describe_table(TableName=staging_table)["Table"]["TableName"] == staging_table
    with pytest.raises(ClientError) as error:
        dynamodb.describe_table(TableName=production_table)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


def _alarm_of(deployer: LocalDeployer, environment: str) -> str:
    alarms = deployer.running[environment].local.stack.alarms()
    return next(a.name for a in alarms.metric if "EchoErrorsAlarm" in a.name)


def test_a_rule_naming_an_alarm_of_another_account_fails_with_one_line(two_accounts: LocalDeployer) -> None:
    alarm = _alarm_of(two_accounts, "staging")
    log = io.StringIO()

    outcome = two_accounts.evaluate_alarm_rule(
        environment="staging", place=PIPELINE, alarm_name=alarm, wait_minutes=1, log=log
    )

    assert not outcome.succeeded
    assert "\n" not in outcome.message
    where = f"account {PIPELINE.account_id} in {PIPELINE.region}, where the rule runs"
    assert outcome.message.startswith(f"alarm {alarm} does not exist in {where}")
    assert f"staging's account {STAGING.account_id}" in outcome.message


def test_a_rule_in_the_alarms_own_account_and_region_watches_it(two_accounts: LocalDeployer) -> None:
    alarm = _alarm_of(two_accounts, "staging")

    outcome = two_accounts.evaluate_alarm_rule(
        environment="staging", place=STAGING, alarm_name=alarm, wait_minutes=1, log=io.StringIO()
    )

    assert outcome.message.startswith(f"alarm {alarm}"), outcome.message
    assert "does not exist" not in outcome.message


def test_staging_and_production_in_one_account_and_region_share_one_local_cloud(tmp_path: Path) -> None:
    deployer = LocalDeployer(tmp_path / "state", TIME_SCALE)
    try:
        template = _fixture_template(tmp_path)
        _deploy(deployer, template, "staging", STAGING)
        _deploy(deployer, template, "production", STAGING)

        cloud = deployer.running["staging"].local.cloud
        assert deployer.running["production"].local.cloud is cloud
        tables = set(cloud.client("dynamodb").list_tables()["TableNames"])
        assert {
            deployer.running["staging"].local.outputs()["ItemsTableName"],
            deployer.running["production"].local.outputs()["ItemsTableName"],
        } <= tables
        deployer.running["staging"].local.stop()  # one environment stopping leaves the shared cloud up
        assert cloud.running
    finally:
        deployer.close()
    assert not cloud.running


def test_an_environment_the_pipeline_moves_to_another_account_is_created_there(tmp_path: Path) -> None:
    deployer = LocalDeployer(tmp_path / "state", TIME_SCALE)
    try:
        template = _fixture_template(tmp_path)
        _deploy(deployer, template, "staging", STAGING)
        log = io.StringIO()
        outcome = deployer.deploy(
            DeployRequest(
                environment="staging",
                stack_name="fixture-staging",
                template=template,
                artifacts={},
                parameters={"Environment": "staging"},
                capabilities=("CAPABILITY_IAM",),
                commit="staging-2",
                log=log,
                place=PRODUCTION,
            )
        )

        assert outcome.succeeded, outcome.message
        assert f"staging now deploys to {PRODUCTION}, not {STAGING}" in log.getvalue()
        assert deployer.running["staging"].local.cloud.place == PRODUCTION
        assert f"/{PRODUCTION.account_id}/" in deployer.running["staging"].local.outputs()["WorkQueueUrl"]
    finally:
        deployer.close()
