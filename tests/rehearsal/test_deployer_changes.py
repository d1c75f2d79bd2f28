"""Updates as CloudFormation change sets and CodeDeploy run them: only what changed is deployed, routes
and resources change in place, a refused or failed update leaves everything as it was."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from rehearsal.base.clock import TimeScale
from rehearsal.cloud.descriptions import QueueSource
from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.release.deploy_port import Outcome
from rehearsal.runtime.environment import LocalEnvironment
from tests.rehearsal.conftest import signed_request
from tests.rehearsal.deploy_support import Packager, deploy_request

TIME_SCALE = TimeScale(seconds_per_minute=0.2)
SUBMIT = "orders-staging-SubmitOrderFunction"
GET = "orders-staging-GetOrderFunction"
SUMMARY_PATH = "/orders/o-1/summary"


@pytest.fixture(scope="module")
def deployer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalDeployer, Packager]]:
    """Staging created once; each test leaves it serving this first release again."""
    root = tmp_path_factory.mktemp("changes")
    local = LocalDeployer(root / "state", TIME_SCALE)
    try:
        packager = Packager(local, root)
        created = local.deploy(deploy_request(packager.package(), "c1", "AllAtOnce"))
        assert created.succeeded, created.message
        yield local, packager
    finally:
        local.close()
        shutil.rmtree(root, ignore_errors=True)


def _staging(local: LocalDeployer) -> LocalEnvironment:
    return local.running["staging"].local


def _routing(local: LocalDeployer, function: str) -> dict[str, float]:
    return _staging(local).functions.alias_routing(function, "live")


def _log(request_log: Any) -> str:
    return str(request_log.getvalue())


def _deploy(
    local: LocalDeployer,
    packager: Packager,
    commit: str,
    *,
    edit: Callable[[dict[str, Any]], None] | None = None,
    patch: tuple[str, str, str] | None = None,
    capabilities: tuple[str, ...] | None = None,
) -> tuple[Outcome, str]:
    template = packager.package(patch, edit)
    request = (
        deploy_request(template, commit, "AllAtOnce")
        if capabilities is None
        else deploy_request(template, commit, "AllAtOnce", capabilities)
    )
    outcome = local.deploy(request)
    return outcome, _log(request.log)


def _add_summary_route(document: dict[str, Any]) -> None:
    document["Resources"]["GetOrderFunction"]["Properties"]["Events"]["GetOrderSummary"] = {
        "Type": "Api",
        "Properties": {"RestApiId": {"Ref": "Api"}, "Path": "/orders/{orderId}/summary", "Method": "get"},
    }


def _summary(local: LocalDeployer) -> requests.Response:
    return signed_request("GET", _staging(local).base_url + SUMMARY_PATH)


def _queue_attribute(local: LocalDeployer, logical_id: str, name: str) -> str:
    environment = _staging(local)
    url = str(environment.stack.resolver.refs[logical_id])
    attributes = environment.cloud.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[name])
    return str(attributes["Attributes"][name])


def _queue_names(local: LocalDeployer) -> set[str]:
    urls = _staging(local).cloud.client("sqs").list_queues().get("QueueUrls", [])
    return {url.rsplit("/", 1)[-1] for url in urls}


def test_an_update_whose_change_set_is_empty_deploys_nothing_and_succeeds(
    deployer: tuple[LocalDeployer, Packager],
) -> None:
    local, packager = deployer
    published = _staging(local).functions.versions(SUBMIT)
    outcome, log = _deploy(local, packager, "c-same")
    assert outcome.succeeded, log
    assert outcome.message.startswith("no changes")
    assert "Change set for orders-staging: no changes" in log
    assert _staging(local).functions.versions(SUBMIT) == published
    assert _routing(local, SUBMIT) == {"1": 1.0}


def test_a_change_to_one_function_publishes_and_deploys_only_that_function(
    deployer: tuple[LocalDeployer, Packager],
) -> None:
    local, packager = deployer

    def describe_differently(document: dict[str, Any]) -> None:
        document["Resources"]["GetOrderFunction"]["Properties"]["Description"] = "GET /orders/{orderId}, v2"

    functions = _staging(local).functions
    aliased = [s.name for s in _staging(local).stack.functions.values() if s.alias_name and s.name != GET]
    published_before = {name: functions.versions(name) for name in [*aliased, GET]}
    outcome, log = _deploy(local, packager, "c-one", edit=describe_differently)
    try:
        assert outcome.succeeded, log
        new_version = functions.versions(GET)[-1]
        assert new_version not in published_before[GET]
        assert _routing(local, GET) == {new_version: 1.0}
        assert "Shifting 1 aliases" in log, log
        assert aliased
        for name in aliased:  # no new version, no hook, no shift for the others
            assert functions.versions(name) == published_before[name], name
            assert _routing(local, name) == {"1": 1.0}, name
    finally:
        assert local.roll_back(environment="staging", log=io.StringIO()).succeeded
    assert _routing(local, GET) == {"1": 1.0}


def test_a_route_added_by_an_update_is_served_without_a_restart_and_goes_with_a_rollback(
    deployer: tuple[LocalDeployer, Packager],
) -> None:
    local, packager = deployer
    gateway, port = _staging(local).gateway, _staging(local).gateway.port
    assert _summary(local).status_code == 403  # no such route: "Missing Authentication Token"

    outcome, log = _deploy(local, packager, "c-route", edit=_add_summary_route)
    assert outcome.succeeded, log
    assert "no function version changed: no CodeDeploy deployment" in log
    assert _staging(local).gateway is gateway and gateway.port == port
    answer = _summary(local)
    assert answer.status_code == 404 and "x-amzn-ErrorType" not in answer.headers  # the function answered

    assert local.roll_back(environment="staging", log=io.StringIO()).succeeded
    assert _summary(local).status_code == 403


def test_a_replacement_is_named_and_the_replaced_resource_deleted_after_the_update(
    deployer: tuple[LocalDeployer, Packager],
) -> None:
    local, packager = deployer
    old_name = str(_staging(local).stack.resolver.attributes[("OrdersDeadLetterQueue", "QueueName")])

    def rename(document: dict[str, Any]) -> None:
        properties = document["Resources"]["OrdersDeadLetterQueue"]["Properties"]
        properties["QueueName"] = {"Fn::Sub": "${AWS::StackName}-orders-dlq-renamed"}

    outcome, log = _deploy(local, packager, "c-rename", edit=rename)
    try:
        assert outcome.succeeded, log
        assert "OrdersDeadLetterQueue (AWS::SQS::Queue) is replaced: QueueName cannot change in place" in log
        assert "orders-staging-orders-dlq-renamed" in _queue_names(local)
        assert old_name not in _queue_names(local)  # CloudFormation's cleanup deletes the old one
    finally:
        assert local.roll_back(environment="staging", log=io.StringIO()).succeeded
    assert old_name in _queue_names(local)
    assert "orders-staging-orders-dlq-renamed" not in _queue_names(local)


def test_a_property_value_the_schema_refuses_fails_the_action_in_one_line_and_changes_nothing(
    deployer: tuple[LocalDeployer, Packager],
) -> None:
    local, packager = deployer

    def too_long(document: dict[str, Any]) -> None:
        document["Resources"]["OrdersQueue"]["Properties"]["VisibilityTimeout"] = 99999
        _add_summary_route(document)

    outcome, log = _deploy(local, packager, "c-invalid", edit=too_long)
    assert not outcome.succeeded
    assert "\n" not in outcome.message
    assert "OrdersQueue (AWS::SQS::Queue) property VisibilityTimeout: 99999" in outcome.message
    assert "43200" in outcome.message
    assert _queue_attribute(local, "OrdersQueue", "VisibilityTimeout") == "180"
    assert _summary(local).status_code == 403


def test_a_template_needing_a_capability_the_action_does_not_give_is_refused(
    deployer: tuple[LocalDeployer, Packager],
) -> None:
    local, packager = deployer
    outcome, _ = _deploy(
        local, packager, "c-caps", edit=_add_summary_route, capabilities=("CAPABILITY_AUTO_EXPAND",)
    )
    assert not outcome.succeeded
    assert outcome.message.startswith("InsufficientCapabilities: Requires capabilities : [CAPABILITY_IAM]")
    assert _summary(local).status_code == 403


def test_a_deployment_that_fails_restores_resources_routes_and_aliases(
    deployer: tuple[LocalDeployer, Packager],
) -> None:
    local, packager = deployer
    # Unknown orders no longer answer 404: the PreTraffic hook's check of the new versions fails.
    broken = (
        "orders/logic/orders.py",
        'raise OrderNotFoundError(f"Order {order_id} does not exist")',
        "raise RuntimeError",
    )

    def change_resources(document: dict[str, Any]) -> None:
        resources = document["Resources"]
        resources["OrdersQueue"]["Properties"]["VisibilityTimeout"] = 240
        resources["ExtraQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders-extra"}}
        _add_summary_route(document)

    outcome, log = _deploy(local, packager, "c-fail", edit=change_resources, patch=broken)
    assert not outcome.succeeded
    assert "BeforeAllowTraffic hook" in outcome.message, log
    assert "Rolled back: resources" in log
    assert _queue_attribute(local, "OrdersQueue", "VisibilityTimeout") == "180"
    assert "orders-extra" not in _queue_names(local)
    assert _summary(local).status_code == 403
    assert _routing(local, SUBMIT) == {"1": 1.0}
    assert _routing(local, GET) == {"1": 1.0}
    assert "ExtraQueue" not in _staging(local).stack.resolver.refs


def _orders_source_batch_sizes(local: LocalDeployer) -> list[int]:
    sources = _staging(local).sources
    return [
        source.batch_size
        for source, (threads, _) in sources.items()
        if isinstance(source, QueueSource)
        and source.logical_id.startswith("ProcessOrdersFunction")
        and all(thread.is_alive() for thread in threads)
    ]


def test_an_event_source_mapping_changed_by_an_update_is_polled_with_its_new_settings(
    deployer: tuple[LocalDeployer, Packager],
) -> None:
    local, packager = deployer
    assert _orders_source_batch_sizes(local) == [10]

    def smaller_batches(document: dict[str, Any]) -> None:
        events = document["Resources"]["ProcessOrdersFunction"]["Properties"]["Events"]
        events["Orders"]["Properties"]["BatchSize"] = 5

    published = _staging(local).functions.versions("orders-staging-ProcessOrdersFunction")
    outcome, log = _deploy(local, packager, "c-batch", edit=smaller_batches)
    assert outcome.succeeded, log
    assert _orders_source_batch_sizes(local) == [5]  # the old poller stopped, one new one polls
    assert _staging(local).functions.versions("orders-staging-ProcessOrdersFunction") == published
    assert _routing(local, "orders-staging-ProcessOrdersFunction") == {"1": 1.0}
    assert local.roll_back(environment="staging", log=io.StringIO()).succeeded
    assert _orders_source_batch_sizes(local) == [10]
