"""The local deployer on its own: the packaged service deployed, hooked, shifted, baked, rolled back."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rehearsal.alarms.evaluator import (
    ALARM,
    OK,
    CompositeAlarmDefinition,
    UnsupportedAlarmError,
    parse_alarm_rule,
)
from rehearsal.base.clock import TimeScale
from rehearsal.base.errors import UserError
from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.deploy.release_store import ReleaseStore
from rehearsal.deploy.shift import serving_version
from rehearsal.deploy.traffic import traffic_steps, weight_at
from rehearsal.release.deploy_port import DeployRequest, Outcome
from tests.rehearsal.deploy_support import Packager, deploy_request
from tests.rehearsal.permission_faults import STATUS_CANNOT_READ_ORDERS

TIME_SCALE = TimeScale(seconds_per_minute=0.2)
# The distinct alarms of service/template.yaml's deployment preferences: 12, and the three API
# functions' per-version p99 latency alarms (ADR 0056).
DEPLOYMENT_ALARMS = 15

# ---------------------------------------------------------------- pure parts


def test_composite_rules_follow_cloudwatch_precedence() -> None:
    rule = CompositeAlarmDefinition.from_properties(
        "Bake", {"AlarmRule": 'ALARM("a") OR ALARM(b) AND NOT OK("c") OR (TRUE AND FALSE)'}
    )
    assert rule.name == "Bake"
    assert rule.members() == ["a", "b", "c"]
    assert rule.state({"a": ALARM}) == ALARM
    assert rule.state({"b": ALARM, "c": ALARM}) == ALARM
    assert rule.state({"b": ALARM, "c": OK}) == OK
    assert rule.state({}) == OK
    assert parse_alarm_rule('INSUFFICIENT_DATA("x")') == ("state", "INSUFFICIENT_DATA", "x")


@pytest.mark.parametrize("rule", ['ALARM("a") OR', '(ALARM("a")', 'ALARM("a") ALARM("b")', "SOMETHING", ")"])
def test_a_rule_that_is_not_understood_is_refused(rule: str) -> None:
    with pytest.raises(UnsupportedAlarmError):
        parse_alarm_rule(rule)


def test_traffic_steps_follow_the_deployment_configuration() -> None:
    assert traffic_steps("CodeDeployDefault.LambdaAllAtOnce") == [(0.0, 1.0)]
    assert traffic_steps("Canary10Percent5Minutes") == [(0.0, 0.1), (5.0, 1.0)]
    linear = traffic_steps("CodeDeployDefault.LambdaLinear10PercentEvery1Minute")
    assert linear[0] == (0.0, 0.1) and linear[-1] == (9.0, 1.0) and len(linear) == 10
    assert weight_at(linear, 2.5) == pytest.approx(0.3)
    assert weight_at([(1.0, 1.0)], 0.5) == 0.0
    with pytest.raises(UserError, match="not emulated"):
        traffic_steps("CodeDeployDefault.OneAtATime")


def test_the_serving_version_is_the_heaviest() -> None:
    assert serving_version({"1": 0.9, "2": 0.1}) == "1"
    assert serving_version({"3": 1.0}) == "3"


def test_a_release_cannot_be_staged_without_the_artifact_bucket(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path)
    assert store.current("staging") is None
    assert store.demote("staging") is None
    template = tmp_path / "packaged.json"
    template.write_text(
        json.dumps(
            {
                "Resources": {
                    "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "s3://b/k"}}
                }
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(UserError, match="no build ran"):
        store.stage(
            "staging", packaged_template=template, commit="c", stack_name="s", parameters={}, tooling=None
        )


def test_without_environments_rules_and_rollbacks_fail_with_a_reason(tmp_path: Path) -> None:
    deployer = LocalDeployer(tmp_path, TIME_SCALE)
    log = io.StringIO()
    rule = deployer.evaluate_alarm_rule(environment="staging", alarm_name="x-bake", wait_minutes=1, log=log)
    assert not rule.succeeded and "not defined" in rule.message
    assert not deployer.roll_back(environment="staging", log=log).succeeded
    deployer.close()
    deployer.close()


# ---------------------------------------------------------------- a deployer against the local cloud


@pytest.fixture(scope="module")
def deployer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalDeployer, Packager]]:
    root = tmp_path_factory.mktemp("deployer")
    local = LocalDeployer(root / "state", TIME_SCALE)
    try:
        yield local, Packager(local, root)
    finally:
        local.close()
        shutil.rmtree(root, ignore_errors=True)


def _routing(
    deployer: LocalDeployer, function: str = "orders-staging-SubmitOrderFunction"
) -> dict[str, float]:
    return deployer.running["staging"].local.functions.alias_routing(function, "live")


@pytest.fixture(scope="module")
def first_deploy(deployer: tuple[LocalDeployer, Packager]) -> Outcome:
    """The stack created once for this module; each test below leaves staging serving it again."""
    local, packager = deployer
    return local.deploy(deploy_request(packager.package(), "c1", "Canary10Percent5Minutes"))


def test_a_first_deploy_creates_the_stack_with_the_aliases_on_the_first_versions(
    deployer: tuple[LocalDeployer, Packager], first_deploy: Outcome
) -> None:
    local, _ = deployer
    assert first_deploy.succeeded, first_deploy.message
    assert first_deploy.outputs["ApiUrl"].startswith("http://127.0.0.1:")
    assert local.build_environment()["AWS_ENDPOINT_URL"] == local.running["staging"].local.cloud.endpoint_url
    assert _routing(local) == {"1": 1.0}


def test_a_deploy_reports_what_it_provisions_only_as_a_name_and_what_the_runtime_lacks_as_not_emulated(
    deployer: tuple[LocalDeployer, Packager], first_deploy: Outcome
) -> None:
    local, _ = deployer
    environment = local.running["staging"].local

    facts = {(f.where, f.what, f.why) for f in first_deploy.not_emulated}

    provisioned = {(where, kind, why) for where, kind, why in environment.stack.not_emulated}
    runtime = {(where, what, why) for what, where, why in environment.not_emulated}
    assert provisioned
    assert facts == provisioned | runtime
    # Roles are enforced now; what IAM checks on AWS and the local cloud does not is named instead.
    assert {"IAM resources and conditions", "IAM resource policies"} <= {what for _, what, _ in facts}
    assert ("PreTrafficHookFunctionRole", "AWS::IAM::Role") in {(where, what) for where, what, _ in facts}


def test_a_version_the_pre_traffic_hook_finds_broken_never_gets_traffic(
    deployer: tuple[LocalDeployer, Packager], first_deploy: Outcome
) -> None:
    local, packager = deployer
    # Unknown orders no longer answer 404: the hook's check of the new version fails.
    broken = (
        "orders/logic/orders.py",
        'raise OrderNotFoundError(f"Order {order_id} does not exist")',
        "raise RuntimeError",
    )
    hooked = local.deploy(deploy_request(packager.package(broken), "c2", "Canary10Percent5Minutes"))
    assert not hooked.succeeded
    assert "BeforeAllowTraffic hook" in hooked.message and hooked.alarm is None
    assert _routing(local) == {"1": 1.0}


def test_a_version_importing_a_module_its_package_lacks_fails_its_hook_and_never_gets_traffic(
    deployer: tuple[LocalDeployer, Packager], first_deploy: Outcome
) -> None:
    local, packager = deployer
    # hypothesis is in the project's virtualenv (a test-only library), not in the package, the
    # Powertools layer or the runtime: on Lambda the new version cannot load.
    missing = (
        "orders/handlers/status.py",
        "from typing import Any\n",
        "from typing import Any\n\nimport hypothesis\n",
    )
    hooked = local.deploy(deploy_request(packager.package(missing), "c-missing", "Canary10Percent5Minutes"))
    assert not hooked.succeeded
    assert "BeforeAllowTraffic hook" in hooked.message and hooked.alarm is None
    assert _routing(local, "orders-staging-GetOrderFunction") == {"1": 1.0}
    assert _routing(local) == {"1": 1.0}


def test_a_bake_alarm_after_a_shift_fails_the_rule_and_a_rollback_serves_the_first_release_again(
    deployer: tuple[LocalDeployer, Packager], first_deploy: Outcome
) -> None:
    local, packager = deployer
    faulty = (
        "orders/handlers/submit.py",
        "    order_request = parse_order_request(request.json_body())\n",
        "    order_request = parse_order_request(request.json_body())\n    raise RuntimeError('fault')\n",
    )
    shifted = local.deploy(deploy_request(packager.package(faulty), "c3", "AllAtOnce"))
    assert shifted.succeeded, shifted.message
    assert serving_version(_routing(local)) != "1"
    log = io.StringIO()
    bake = local.evaluate_alarm_rule(
        environment="staging", alarm_name="orders-staging-bake", wait_minutes=30, log=log
    )
    assert not bake.succeeded, log.getvalue()
    assert "orders-staging-SubmitOrderErrorsAlarm" in bake.message
    assert local.roll_back(environment="staging", log=log).succeeded
    assert _routing(local) == {"1": 1.0}
    current = local.store.current("staging")
    assert current is not None and current.commit == "c1"


def test_a_rule_on_a_metric_alarm_is_watched_like_a_composite_one(
    deployer: tuple[LocalDeployer, Packager], first_deploy: Outcome
) -> None:
    local, _ = deployer
    plain = local.evaluate_alarm_rule(
        environment=None, alarm_name="orders-staging-Api5xxAlarm", wait_minutes=1, log=io.StringIO()
    )
    assert plain.message.startswith("alarm orders-staging-Api5xxAlarm")


def test_a_version_whose_role_lost_a_permission_its_code_uses_fails_its_hook_and_never_gets_traffic(
    deployer: tuple[LocalDeployer, Packager], first_deploy: Outcome
) -> None:
    local, packager = deployer
    # The status function keeps its code but its role no longer allows dynamodb:GetItem: on AWS
    # its read is denied, the hook's "unknown order is 404" check gets a 500 (ADR 0043).
    # With a code change, as a removed policy alone publishes no new version (only the role changes).
    template = packager.package(
        ("orders/logic/orders.py", "does not exist", "is not known"), removed=STATUS_CANNOT_READ_ORDERS
    )
    request = deploy_request(template, "c-no-read", "Canary10Percent5Minutes")
    hooked = local.deploy(request)
    assert not hooked.succeeded
    assert "BeforeAllowTraffic hook" in hooked.message
    denied = (
        "assumed-role/orders-staging-GetOrderFunctionRole/orders-staging-GetOrderFunction is not authorized"
    )
    assert isinstance(request.log, io.StringIO)
    assert f"{denied} to perform: dynamodb:GetItem" in request.log.getvalue()
    assert _routing(local, "orders-staging-GetOrderFunction") == {"1": 1.0}
    assert _routing(local) == {"1": 1.0}


def test_a_staging_canary_judges_the_new_versions_with_data_from_the_declared_traffic_source(
    deployer: tuple[LocalDeployer, Packager], first_deploy: Outcome
) -> None:
    local, packager = deployer
    good = ("orders/logic/orders.py", "does not exist", "is unknown")  # a new version that still works
    request = deploy_request(packager.package(good), "c4", "Canary10Percent5Minutes")
    outcome = local.deploy(request)
    assert outcome.succeeded, outcome.message
    log = request.log.getvalue()  # type: ignore[attr-defined]
    judged = {item.alarm: item for item in outcome.alarm_evidence}
    assert {item.watched for item in outcome.alarm_evidence} == {"canary"}
    assert len(judged) == DEPLOYMENT_ALARMS  # every deployment group's alarms, each once
    # The API functions get the traffic source's calls directly; the worker and the attach function
    # only through the queue and S3, whose batches a busy machine makes few (they are reported either way).
    for function in ("SubmitOrder", "GetOrder", "PresignAttachment"):
        errors = judged[f"orders-staging-{function}ErrorsAlarm"]
        assert errors.with_data and errors.evaluations_with_data > 0, f"{errors}\n{log}"
    assert "alarm orders-staging-SubmitOrderErrorsAlarm: judged with data" in log
    with_data = sum(item.with_data for item in judged.values())
    assert f"Alarms judged with data: {with_data} of {DEPLOYMENT_ALARMS}" in log


def test_a_production_canary_says_its_alarms_judged_without_data(
    deployer: tuple[LocalDeployer, Packager], first_deploy: Outcome
) -> None:
    local, packager = deployer
    first = packager.package()
    # A code change: an identical package would be an empty change set, deploying nothing.
    second = packager.package(("orders/logic/orders.py", "does not exist", "is not known"))

    def production(template: Path, commit: str) -> DeployRequest:
        return dataclasses.replace(
            deploy_request(template, commit, "Canary10Percent5Minutes"),
            environment="production",
            stack_name="orders-production",
            parameters={"Environment": "production", "DeploymentType": "Canary10Percent5Minutes"},
            log=io.StringIO(),
        )

    assert local.deploy(production(first, "p1")).succeeded
    request = production(second, "p2")
    outcome = local.deploy(request)
    assert outcome.succeeded, outcome.message
    assert len(outcome.alarm_evidence) == DEPLOYMENT_ALARMS
    assert [item.alarm for item in outcome.alarm_evidence if item.with_data] == []
    assert all(item.evaluations > 0 for item in outcome.alarm_evidence)
    log = request.log.getvalue()  # type: ignore[attr-defined]
    assert f"Alarms judged with data: 0 of {DEPLOYMENT_ALARMS}" in log
    assert "held the shift" not in log  # nothing to wait for: production has no traffic source offline
