"""The offline release reads the synthesized pipeline's accounts and regions (ADR 0049).

The three-account fixture context and its single-account variant, synthesized once a session, are read
by the rehearsal's pipeline model; the local deployer then starts one local cloud per account and
region, each answering as that account.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import boto3
import pytest

from rehearsal.base.aws import AccountRegion
from rehearsal.base.clock import TimeScale
from rehearsal.base.layout import StateLayout
from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.release.pipeline_model import PipelineModel, load_pipeline
from tests.infra.conftest import (
    PIPELINE_ACCOUNT,
    PRODUCTION_ACCOUNT,
    REGION,
    SINGLE_ACCOUNT_CONTEXT,
    STAGING_ACCOUNT,
    Synth,
    Synthesized,
)

PIPELINE = AccountRegion(account_id=PIPELINE_ACCOUNT, region=REGION)
STAGING = AccountRegion(account_id=STAGING_ACCOUNT, region=REGION)
PRODUCTION = AccountRegion(account_id=PRODUCTION_ACCOUNT, region=REGION)


def _model(synthesized: Synthesized) -> PipelineModel:
    return load_pipeline(synthesized.outdir)


def _places(model: PipelineModel) -> dict[str, AccountRegion]:
    return {f"{a.stage}/{a.name}": a.place for s in model.stages for a in s.actions}


def test_the_pipeline_runs_in_the_pipeline_account_and_region(synthesized: Synthesized) -> None:
    assert _model(synthesized).place == PIPELINE


def test_each_deploy_action_runs_in_its_environments_account_and_the_rest_in_the_pipelines(
    synthesized: Synthesized,
) -> None:
    places = _places(_model(synthesized))

    assert places["Staging/Service.Prepare"] == places["Staging/Service.Deploy"] == STAGING
    assert places["Production/Service.Prepare"] == places["Production/Service.Deploy"] == PRODUCTION
    assert places["Build/Build"] == places["UpdatePipeline/SelfMutate"] == PIPELINE
    assert places["Staging/IntegrationTests"] == places["Approval/Release"] == PIPELINE


def test_a_test_build_reaches_its_environments_account_and_the_build_the_pipelines(
    synthesized: Synthesized,
) -> None:
    model = _model(synthesized)
    actions = {f"{a.stage}/{a.name}": a for s in model.stages for a in s.actions}

    assert model.build_place(actions["Build/Build"]) == PIPELINE
    assert model.build_place(actions["Staging/IntegrationTests"]) == STAGING
    assert model.build_place(actions["Production/SmokeTests"]) == PRODUCTION


def test_stages_deploy_their_stacks_where_the_config_puts_them(synthesized: Synthesized) -> None:
    model = _model(synthesized)
    targets = {s.name: model.deploy_target(s) for s in model.stages}

    assert targets["UpdatePipeline"] is None  # self-mutation is not an environment
    staging, production = targets["Staging"], targets["Production"]
    assert staging is not None and production is not None
    assert (staging.environment, staging.stack_name, staging.place) == (
        "staging",
        "payments-staging",
        STAGING,
    )
    assert (production.environment, production.place) == ("production", PRODUCTION)


def test_the_approvers_role_is_an_arn_of_the_pipeline_account(synthesized: Synthesized) -> None:
    (approval,) = [a for s in _model(synthesized).stages for a in s.actions if a.type.category == "Approval"]

    assert approval.approvers[0].startswith(f"arn:aws:iam::{PIPELINE_ACCOUNT}:role/")


def test_a_single_account_topology_puts_every_action_in_the_pipelines_account(synth: Synth) -> None:
    model = load_pipeline(synth(SINGLE_ACCOUNT_CONTEXT).outdir)

    assert set(_places(model).values()) == {PIPELINE}


@pytest.fixture
def deployer(synthesized: Synthesized, tmp_path: Path) -> Iterator[LocalDeployer]:
    """A deployer whose deployed pipeline is the three-account fixture's."""
    state = tmp_path / "state"
    shutil.copytree(synthesized.outdir, StateLayout(root=state).pipeline_assembly)
    local = LocalDeployer(state, TimeScale(seconds_per_minute=0.2))
    try:
        yield local
    finally:
        local.close()


def test_each_account_of_the_three_account_pipeline_gets_a_local_cloud_answering_as_it(
    deployer: LocalDeployer,
) -> None:
    answered = {}
    for place in (PIPELINE, STAGING, PRODUCTION):
        environ = deployer.build_environment(place)
        session = boto3.session.Session(
            aws_access_key_id=environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environ["AWS_SECRET_ACCESS_KEY"],
            region_name=environ["AWS_REGION"],
        )
        sts = session.client("sts", endpoint_url=environ["AWS_ENDPOINT_URL"])
        answered[place] = (sts.get_caller_identity()["Account"], session.region_name)

    assert answered == {place: (place.account_id, place.region) for place in (PIPELINE, STAGING, PRODUCTION)}
    assert len({cloud.endpoint_url for cloud in deployer.clouds.values()}) == 3


def _bucket_names(environ: Mapping[str, str]) -> set[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=environ["AWS_ENDPOINT_URL"],
        region_name=environ["AWS_REGION"],
        aws_access_key_id=environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environ["AWS_SECRET_ACCESS_KEY"],
    )
    return {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}


def test_the_artifact_bucket_lives_in_the_pipeline_accounts_cloud_only(deployer: LocalDeployer) -> None:
    in_pipeline = _bucket_names(deployer.build_environment(PIPELINE))
    in_staging = _bucket_names(deployer.build_environment(STAGING))

    assert any("artifacts" in name for name in in_pipeline), in_pipeline
    assert not in_pipeline & in_staging
