"""moto_fixes: DynamoDB transactions stay all-or-nothing with the cheaper rollback; AWS managed
policies built once per process stay each account's own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends

from rehearsal.cloud import moto_fixes
from rehearsal.cloud.server import LocalCloud, start_local_cloud


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    cloud: LocalCloud = start_local_cloud("local")
    try:
        client = cloud.client("dynamodb")
        for name, keys in (("plain", ["pk"]), ("ranged", ["pk", "sk"])):
            client.create_table(
                TableName=name,
                KeySchema=[
                    {"AttributeName": key, "KeyType": kind}
                    for key, kind in zip(keys, ("HASH", "RANGE"), strict=False)
                ],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key in keys],
                BillingMode="PAY_PER_REQUEST",
            )
        client.put_item(TableName="plain", Item={"pk": {"S": "kept"}, "v": {"N": "1"}})
        client.put_item(TableName="ranged", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"N": "1"}})
        yield client
    finally:
        cloud.stop()


def _cancelled(dynamodb: Any, *items: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=list(items))
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"


def _get(dynamodb: Any, table: str, **key: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = dynamodb.get_item(
        TableName=table, Key={name: {"S": value} for name, value in key.items()}
    ).get("Item")
    return item


def test_a_cancelled_transaction_leaves_no_new_item_and_no_updated_one(dynamodb: Any) -> None:
    _cancelled(
        dynamodb,
        {"Put": {"TableName": "plain", "Item": {"pk": {"S": "new"}}}},
        {
            "Update": {
                "TableName": "ranged",
                "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                "UpdateExpression": "SET v = :two",
                "ExpressionAttributeValues": {":two": {"N": "2"}},
            }
        },
        {
            "Put": {
                "TableName": "plain",
                "Item": {"pk": {"S": "kept"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    )

    assert _get(dynamodb, "plain", pk="new") is None
    assert _get(dynamodb, "ranged", pk="a", sk="1") == {"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"N": "1"}}
    assert _get(dynamodb, "plain", pk="kept") == {"pk": {"S": "kept"}, "v": {"N": "1"}}


def test_a_transaction_that_succeeds_writes_every_item(dynamodb: Any) -> None:
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "plain", "Item": {"pk": {"S": "both-1"}}}},
            {"Put": {"TableName": "ranged", "Item": {"pk": {"S": "both"}, "sk": {"S": "2"}}}},
        ]
    )

    assert _get(dynamodb, "plain", pk="both-1") is not None
    assert _get(dynamodb, "ranged", pk="both", sk="2") is not None


def test_each_iam_backend_gets_its_own_copies_of_the_aws_managed_policies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Built once per process, copied per account: what one account does to them stays its own."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    moto_fixes.parse_managed_policies_once()
    arn = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    with mock_aws():
        one = boto3.client("iam", region_name="us-east-1")
        one.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
        one.attach_role_policy(RoleName="r", PolicyArn=arn)
        iam = iam_backends["222222222222"]["global"]
        other = iam.get_policy(arn)
        mine = iam_backends[DEFAULT_ACCOUNT_ID]["global"].get_policy(arn)
        assert (mine.attachment_count, other.attachment_count) == (1, 0)
        assert mine.versions[0] is not other.versions[0] and mine.tags is not other.tags
        assert mine.id == other.id  # an AWS managed policy has one id everywhere
        assert one.get_policy(PolicyArn=arn)["Policy"]["Arn"] == arn
