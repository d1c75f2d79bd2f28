"""The pipeline as a team would configure it: tests build it from these fixture values, never cdk.json.

`cdk.json` holds the team's own values (the shipped example until a team edits it); tests only
check that it parses into a valid config. Everything asserted about the synthesized pipeline comes
from `FIXTURE_CONTEXT` (three accounts, a custom qualifier) or `SINGLE_ACCOUNT_CONTEXT`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported where used: pytest-xdist's controller loads this file and runs no test
    from aws_cdk import App
    from aws_cdk.assertions import Template

ROOT = Path(__file__).resolve().parents[2]
# CDK feature flags belong to the app, not to a team: the fixture synthesizes with the repository's.
FEATURE_FLAGS = {
    key: value
    for key, value in json.loads((ROOT / "cdk.json").read_text())["context"].items()
    if key.startswith("@aws-cdk/")
}

PIPELINE_ACCOUNT = "444455556666"
STAGING_ACCOUNT = "555566667777"
PRODUCTION_ACCOUNT = "666677778888"
REGION = "eu-central-1"

# Another team's values: nothing here equals cdk.json's shipped example.
FIXTURE_CONTEXT: dict[str, Any] = {
    "serviceName": "payments",
    "repository": "acme-corp/payments-service",
    "branch": "release",
    "connectionArn": f"arn:aws:codeconnections:{REGION}:{PIPELINE_ACCOUNT}:connection/"
    "3f1e2d4c-5b6a-4789-9abc-def012345678",
    "pipelineAccount": PIPELINE_ACCOUNT,
    "pipelineRegion": REGION,
    "stagingAccount": STAGING_ACCOUNT,
    "stagingRegion": REGION,
    "productionAccount": PRODUCTION_ACCOUNT,
    "productionRegion": REGION,
    "releaseManagerEmails": ["payments-releases@acme.test"],
    "notificationEmails": ["payments-team@acme.test"],
    "approverPrincipals": [f"arn:aws:iam::{PIPELINE_ACCOUNT}:role/PaymentsReleaseManagers"],
    "stagingCanaryType": "Linear10PercentEvery1Minute",
    "productionCanaryType": "Canary10Percent15Minutes",
    "stagingBakeMinutes": 10,
    "productionBakeMinutes": 30,
    "bakeAlarmName": "{stackName}-bake",
    "executionMode": "QUEUED",
    "triggerFilePathsExcluded": ["docs/**"],
    "reviewUrl": "https://gitlab.acme.test/acme-corp/payments-service/-/commit/{commitId}",
    "bootstrapQualifier": "acme2026",
    **FEATURE_FLAGS,
}
# The same team with everything in one account (the other supported topology).
SINGLE_ACCOUNT_CONTEXT: dict[str, Any] = {
    **FIXTURE_CONTEXT,
    "stagingAccount": PIPELINE_ACCOUNT,
    "productionAccount": PIPELINE_ACCOUNT,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "another_team: reruns the infra tests on a copy with another cdk.json (make test only)"
    )


@dataclass(frozen=True, kw_only=True)
class Synthesized:
    """One synthesized app: the construct tree, its cdk.out and the pipeline stack's template."""

    app: App
    outdir: Path
    template_json: dict[str, Any]

    @property
    def template(self) -> Template:
        from aws_cdk.assertions import Template  # noqa: PLC0415 - see the imports

        return Template.from_json(self.template_json)

    @property
    def stages(self) -> list[dict[str, Any]]:
        (pipeline,) = [
            r for r in self.template_json["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"
        ]
        return pipeline["Properties"]["Stages"]  # type: ignore[no-any-return]


Synth = Callable[[Mapping[str, Any]], Synthesized]


# Each context's synthesis, once a test process: shared by the infra tests and the rehearsal's tests of
# the synthesized pipeline (tests/rehearsal/conftest.py), which reach this fixture by importing it.
_SYNTHESIZED: dict[str, Synthesized] = {}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Synthesize an app from a context (with cdk-nag, as `make synth`); each context once a process."""
    from pipeline.app import STACK_ID, build_app  # noqa: PLC0415 - see the imports

    done = _SYNTHESIZED

    def _synth(context: Mapping[str, Any]) -> Synthesized:
        key = json.dumps(context, sort_keys=True)
        if key not in done:
            outdir = tmp_path_factory.mktemp("cdk.out")
            app = build_app({**context, "aws:cdk:disable-stack-trace": True}, outdir=str(outdir))
            app.synth()  # cdk-nag findings would make this raise
            template_json = json.loads((outdir / f"{STACK_ID}.template.json").read_text())
            done[key] = Synthesized(app=app, outdir=outdir, template_json=template_json)
        return done[key]

    return _synth


@pytest.fixture(scope="session")
def synthesized(synth: Synth) -> Synthesized:
    """The three-account pipeline of FIXTURE_CONTEXT."""
    return synth(FIXTURE_CONTEXT)


@pytest.fixture(scope="session")
def single_account(synth: Synth) -> Synthesized:
    """The pipeline with staging and production in the pipeline account."""
    return synth(SINGLE_ACCOUNT_CONTEXT)


@pytest.fixture(scope="session")
def cdk_out(synthesized: Synthesized) -> Path:
    return synthesized.outdir


@pytest.fixture(scope="session")
def app(synthesized: Synthesized) -> App:
    return synthesized.app


@pytest.fixture(scope="session")
def template_json(synthesized: Synthesized) -> dict[str, Any]:
    return synthesized.template_json


@pytest.fixture(scope="session")
def template(synthesized: Synthesized) -> Template:
    return synthesized.template


@pytest.fixture(scope="session")
def stages(synthesized: Synthesized) -> list[dict[str, Any]]:
    return synthesized.stages
