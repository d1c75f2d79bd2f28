"""CloudFormation's cleanup and rollback of an update in the local cloud, as DeletionPolicy decides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rehearsal.cloud.provision import Stack, clean_up_stack, provision_stack, roll_back_stack
from rehearsal.cloud.server import LocalCloud, start_local_cloud
from rehearsal.cloud.template import StackIdentity, transform_template


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    started = start_local_cloud("staging")
    try:
        yield started
    finally:
        started.stop()


def _stack(cloud: LocalCloud, name: str, resources: dict[str, Any]) -> Stack:
    identity = StackIdentity(stack_name=name, region=cloud.region, account_id=cloud.account_id)
    template = transform_template({"Resources": resources}, identity=identity, base_dir=Path())
    return provision_stack(cloud, template, identity=identity, environment="staging")


def _queues(cloud: LocalCloud) -> set[str]:
    return {url.rsplit("/", 1)[-1] for url in cloud.client("sqs").list_queues().get("QueueUrls", [])}


def _queue(name: str, policy: str | None = None, timeout: int = 30) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"QueueName": name, "VisibilityTimeout": timeout},
    }
    if policy:
        resource["DeletionPolicy"] = policy
    return resource


def test_cleanup_deletes_what_the_update_removed_unless_its_deletion_policy_retains_it(
    cloud: LocalCloud,
) -> None:
    deployed = _stack(
        cloud,
        "cleanup",
        {
            "Kept": _queue("cleanup-kept", "Retain"),
            "KeptOnCleanup": _queue("cleanup-kept-on-cleanup", "RetainExceptOnCreate"),
            "Gone": _queue("cleanup-gone"),
            "Stays": _queue("cleanup-stays"),
        },
    )
    updated = _stack(cloud, "cleanup", {"Stays": _queue("cleanup-stays")})
    assert clean_up_stack(cloud, deployed=deployed, updated=updated) == []
    queues = _queues(cloud)
    assert {"cleanup-kept", "cleanup-kept-on-cleanup", "cleanup-stays"} <= queues
    assert "cleanup-gone" not in queues


def test_a_rollback_deletes_what_the_update_created_and_sets_changed_attributes_back(
    cloud: LocalCloud,
) -> None:
    deployed = _stack(cloud, "rollback", {"Main": _queue("rollback-main", timeout=30)})
    updated = _stack(
        cloud,
        "rollback",
        {
            "Main": _queue("rollback-main", timeout=90),
            "New": _queue("rollback-new", "RetainExceptOnCreate"),
            "NewKept": _queue("rollback-new-kept", "Retain"),
        },
    )
    assert roll_back_stack(cloud, deployed=deployed, updated=updated) == []
    queues = _queues(cloud)
    assert "rollback-new" not in queues
    assert "rollback-new-kept" in queues  # Retain keeps it even when its creation is rolled back
    url = str(deployed.resolver.refs["Main"])
    attributes = cloud.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "30"
