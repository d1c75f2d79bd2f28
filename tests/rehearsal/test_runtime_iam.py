"""IAM offline: the local cloud enforces roles, functions sign as their role, nothing allows more than AWS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from rehearsal.base.errors import UserError
from rehearsal.cloud import roles
from rehearsal.cloud.enforcement import dynamodb_checks
from rehearsal.cloud.provision import deploy_template
from rehearsal.cloud.roles import enforceable_policy, local_trust_policy, put_role, trusts_lambda
from rehearsal.cloud.server import LocalCloud, start_local_cloud
from rehearsal.cloud.template import StackIdentity
from rehearsal.runtime.credentials import ExecutionRoles, PollerSqs
from rehearsal.runtime.environment import LocalEnvironment

LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}
    ],
}
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


# ---------------------------------------------------------------- policy rewriting (no cloud)


def test_a_statement_scoped_to_an_alarm_is_checked_by_action_only() -> None:
    alarm = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:bake"
    rewritten = enforceable_policy(
        _policy({"Effect": "Allow", "Action": "cloudwatch:DescribeAlarms", "Resource": alarm})
    )
    assert rewritten.document["Statement"] == [
        {"Effect": "Allow", "Action": ["cloudwatch:DescribeAlarms"], "Resource": "*"}
    ]
    assert rewritten.notes and "action only" in rewritten.notes[0]


def test_s3_sqs_and_dynamodb_statements_keep_their_resources() -> None:
    statement = {
        "Effect": "Allow",
        "Action": ["s3:PutObject", "sqs:SendMessage", "dynamodb:PutItem", "cloudwatch:PutMetricData"],
        "Resource": ["arn:aws:s3:::bucket/orders/*", "arn:aws:sqs:us-east-1:123456789012:q", TABLE_ARN],
    }
    kept, unscoped = enforceable_policy(_policy(statement)).document["Statement"]
    assert kept["Action"] == ["s3:PutObject", "sqs:SendMessage", "dynamodb:PutItem", "sqs:SendMessageBatch"]
    assert kept["Resource"] == statement["Resource"]
    assert unscoped["Action"] == ["cloudwatch:PutMetricData"] and unscoped["Resource"] == "*"


def test_a_single_sqs_action_also_grants_its_batch_action_as_on_aws() -> None:
    statement = {"Effect": "Allow", "Action": ["sqs:DeleteMessage", "sqs:ReceiveMessage"], "Resource": "*"}
    (rewritten,) = enforceable_policy(_policy(statement)).document["Statement"]
    assert rewritten["Action"] == ["sqs:DeleteMessage", "sqs:ReceiveMessage", "sqs:DeleteMessageBatch"]


def test_dynamodb_requests_are_checked_per_table_and_a_transaction_per_item() -> None:
    prefix = "arn:aws:dynamodb:us-east-1:123456789012:table/"
    transaction = {
        "TransactItems": [{"Put": {"TableName": "orders"}}, {"ConditionCheck": {"TableName": "keys"}}]
    }
    assert list(dynamodb_checks("TransactWriteItems", transaction, prefix)) == [
        ("PutItem", f"{prefix}orders"),
        ("ConditionCheckItem", f"{prefix}keys"),
    ]
    batch = {"RequestItems": {"orders": [], "keys": []}}
    assert list(dynamodb_checks("BatchWriteItem", batch, prefix)) == [
        ("BatchWriteItem", f"{prefix}orders"),
        ("BatchWriteItem", f"{prefix}keys"),
    ]
    query = {"TableName": "orders", "IndexName": "unsent"}
    assert list(dynamodb_checks("Query", query, prefix)) == [("Query", f"{prefix}orders/index/unsent")]
    assert list(dynamodb_checks("ListTables", {}, prefix)) == [("ListTables", "*")]


def test_a_conditional_allow_is_dropped_and_a_conditional_deny_always_denies() -> None:
    condition = {"Bool": {"aws:SecureTransport": "false"}}
    rewritten = enforceable_policy(
        _policy(
            {"Sid": "OnlyTls", "Effect": "Allow", "Action": "sqs:*", "Resource": "*", "Condition": condition},
            {"Sid": "NoPlain", "Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": condition},
        )
    )
    assert rewritten.document["Statement"] == [
        {"Sid": "NoPlain", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    ]
    assert len(rewritten.notes) == 2


def test_an_allow_with_not_resource_is_dropped_leaving_a_policy_that_allows_nothing() -> None:
    rewritten = enforceable_policy(
        _policy({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::x"})
    )
    assert rewritten.document["Statement"] == [{"Effect": "Deny", "Action": "*", "Resource": "*"}]


def test_only_a_role_lambda_may_assume_trusts_the_runtime() -> None:
    stand_in = "arn:aws:iam::123456789012:user/rehearsal-administrator"
    assert trusts_lambda(LAMBDA_TRUST)
    trusted = local_trust_policy(LAMBDA_TRUST, lambda_stand_in=stand_in)
    assert trusted["Statement"][0]["Principal"] == {"AWS": stand_in}
    codedeploy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "codedeploy.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]
    }
    assert not trusts_lambda(codedeploy)
    assert local_trust_policy(codedeploy, lambda_stand_in=stand_in)["Statement"][0]["Principal"] != {
        "AWS": stand_in
    }


# ---------------------------------------------------------------- the local cloud


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    started = start_local_cloud("staging")
    try:
        yield started
    finally:
        started.stop()


def _client_as(cloud: LocalCloud, service: str, environ: dict[str, str]) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=cloud.endpoint_url,
        region_name=cloud.region,
        aws_access_key_id=environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environ["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=environ.get("AWS_SESSION_TOKEN"),
    )


def _role(cloud: LocalCloud, name: str, *statements: dict[str, Any]) -> str:
    arn, _ = put_role(
        cloud.client("iam"),
        name=name,
        path="/",
        trust=LAMBDA_TRUST,
        inline={"fn": _policy(*statements)} if statements else {},
        managed=["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
        lambda_stand_in=cloud.administrator_arn,
    )
    return arn


def test_a_key_the_local_cloud_does_not_know_is_refused(cloud: LocalCloud) -> None:
    stranger = _client_as(cloud, "sqs", {"AWS_ACCESS_KEY_ID": "stranger", "AWS_SECRET_ACCESS_KEY": "x"})
    with pytest.raises(ClientError, match="InvalidClientTokenId"):
        stranger.list_queues()


def test_the_rehearsal_itself_provisions_as_the_administrator(cloud: LocalCloud) -> None:
    cloud.client("dynamodb").create_table(
        TableName="orders",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    url = cloud.client("sqs").create_queue(QueueName="provisioned")["QueueUrl"]
    assert cloud.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    assert "orders" in cloud.client("dynamodb").list_tables()["TableNames"]


def test_a_role_session_may_do_what_its_policy_allows_and_nothing_else(cloud: LocalCloud) -> None:
    role = _role(cloud, "reader", {"Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"})
    session = ExecutionRoles(cloud.client("sts")).session(role, "reader-fn").environ()
    assert "QueueUrls" in _client_as(cloud, "sqs", session).list_queues()
    with pytest.raises(ClientError, match="AccessDenied"):
        _client_as(cloud, "iam", session).create_user(UserName="intruder")
    with pytest.raises(ClientError, match="not authorized to perform: sqs:CreateQueue"):
        _client_as(cloud, "sqs", session).create_queue(QueueName="not-mine")


def test_a_session_may_write_only_the_tables_its_policy_names_and_a_transaction_needs_each_item_action(
    cloud: LocalCloud,
) -> None:
    for table in ("written", "other"):
        cloud.client("dynamodb").create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    table_arn = f"arn:aws:dynamodb:{cloud.region}:{cloud.account_id}:table/written"
    role = _role(cloud, "writer", {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table_arn})
    session = ExecutionRoles(cloud.client("sts")).session(role, "writer-fn").environ()
    dynamodb = _client_as(cloud, "dynamodb", session)
    dynamodb.put_item(TableName="written", Item={"k": {"S": "1"}})
    with pytest.raises(ClientError, match="not authorized to perform: dynamodb:PutItem"):
        dynamodb.put_item(TableName="other", Item={"k": {"S": "1"}})
    dynamodb.transact_write_items(
        TransactItems=[{"Put": {"TableName": "written", "Item": {"k": {"S": "2"}}}}]
    )
    update = {"TableName": "written", "Key": {"k": {"S": "2"}}, "UpdateExpression": "SET v = :v"}
    with pytest.raises(ClientError, match="not authorized to perform: dynamodb:UpdateItem"):
        dynamodb.transact_write_items(
            TransactItems=[{"Update": {**update, "ExpressionAttributeValues": {":v": {"S": "x"}}}}]
        )


def test_a_permission_removed_on_update_is_denied_to_the_session_already_handed_out(
    cloud: LocalCloud,
) -> None:
    sqs_url = cloud.client("sqs").create_queue(QueueName="outbox")["QueueUrl"]
    send = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:*:*:outbox"}
    role = _role(cloud, "sender", send)
    session = ExecutionRoles(cloud.client("sts")).session(role, "sender-fn").environ()
    _client_as(cloud, "sqs", session).send_message(QueueUrl=sqs_url, MessageBody="allowed")
    _role(cloud, "sender")  # the template's next version drops the statement: IAM applies it to every session
    with pytest.raises(ClientError, match="AccessDenied"):
        _client_as(cloud, "sqs", session).send_message(QueueUrl=sqs_url, MessageBody="denied")
    assert json.loads(
        json.dumps(cloud.client("iam").list_role_policies(RoleName="sender")["PolicyNames"])
    ) == ["managed.AWSLambdaBasicExecutionRole"]


def test_a_poller_receives_as_the_function_role_and_compresses_visibility_as_the_rehearsal(
    cloud: LocalCloud,
) -> None:
    admin = cloud.client("sqs")
    url = admin.create_queue(QueueName="polled")["QueueUrl"]
    admin.send_message(QueueUrl=url, MessageBody="m")
    role = _role(cloud, "no-receive")  # logs only: its event source mapping cannot read the queue
    session = ExecutionRoles(cloud.client("sts")).session(role, "no-receive-fn")
    role_sqs = cloud.client_as("sqs", session.access_key_id, session.secret_access_key, session.session_token)
    poller = PollerSqs(role_client=role_sqs, own_client=admin)
    with pytest.raises(ClientError, match="not authorized to perform: sqs:ReceiveMessage"):
        poller.receive_message(QueueUrl=url)
    handle = admin.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
    poller.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)


def test_a_role_lambda_may_not_assume_fails_with_one_line(cloud: LocalCloud) -> None:
    arn, _ = put_role(
        cloud.client("iam"),
        name="deployer-only",
        path="/",
        trust={
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "codedeploy.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ]
        },
        inline={},
        managed=[],
        lambda_stand_in=cloud.administrator_arn,
    )
    with pytest.raises(UserError, match="cannot be assumed"):
        ExecutionRoles(cloud.client("sts")).session(arn, "fn")


def test_a_trust_policy_the_rehearsal_cannot_resolve_trusts_nobody_and_is_listed(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    # Offline a role ARN handed over as a parameter is a name (GetAtt of another stack's role):
    # selecting its account fails. The role is still created, and nothing may assume it here.
    runner_account = {"Fn::Select": [4, {"Fn::Split": [":", {"Ref": "Runner"}]}]}
    trust = {"Effect": "Allow", "Principal": {"AWS": runner_account}, "Action": "sts:AssumeRole"}
    document = {
        "Parameters": {"Runner": {"Type": "String"}},
        "Resources": {
            "TestRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": {"Statement": [trust]}},
            }
        },
    }
    identity = StackIdentity(stack_name="trust", region=cloud.region, account_id=cloud.account_id)
    stack = deploy_template(
        cloud,
        document,
        identity=identity,
        environment="staging",
        parameters={"Runner": "Build.Arn"},
        base_dir=tmp_path,
    )
    (note,) = [why for where, _, why in stack.not_emulated if where == "TestRole"]
    assert note.startswith("trust policy not resolvable offline (IndexError") and "nothing may assume" in note
    with pytest.raises(UserError, match="cannot be assumed"):
        ExecutionRoles(cloud.client("sts")).session(str(stack.resolver.attributes[("TestRole", "Arn")]), "fn")


def test_a_managed_policy_the_local_cloud_lacks_fails_with_one_line(cloud: LocalCloud) -> None:
    with pytest.raises(UserError, match="not known to the local cloud"):
        put_role(
            cloud.client("iam"),
            name="odd",
            path="/",
            trust=LAMBDA_TRUST,
            inline={},
            managed=["arn:aws:iam::aws:policy/NoSuchPolicyEver"],
            lambda_stand_in=cloud.administrator_arn,
        )


def test_an_aws_managed_policy_is_read_once_a_customer_managed_one_every_time(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(roles, "_aws_managed_documents", {})
    iam = cloud.client("iam")
    basic = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    statement = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}
    customer = iam.create_policy(PolicyName="orders-extra", PolicyDocument=json.dumps(_policy(statement)))
    customer_arn = customer["Policy"]["Arn"]
    reads: list[str] = []
    iam.meta.events.register(
        "provide-client-params.iam.GetPolicy", lambda params, **_: reads.append(params["PolicyArn"])
    )
    for name in ("first", "second"):
        put_role(
            iam,
            name=name,
            path="/",
            trust=LAMBDA_TRUST,
            inline={},
            managed=[basic, customer_arn],
            lambda_stand_in=cloud.administrator_arn,
        )
        stored = iam.get_role_policy(RoleName=name, PolicyName="managed.AWSLambdaBasicExecutionRole")
        assert "logs:CreateLogStream" in json.dumps(stored["PolicyDocument"])
    assert sorted(reads) == sorted([basic, customer_arn, customer_arn])


# ---------------------------------------------------------------- a function, as Lambda runs it


def test_a_function_signs_as_its_role_and_is_refused_an_administrator_call(
    fixture_env: LocalEnvironment,
) -> None:
    name = fixture_env.stack.functions["ProbeFunction"].name
    result = fixture_env.functions.invoke(name, {"user": "from-a-function"})
    assert not result.failed, result.error
    assert result.payload["hasSessionToken"] is True
    assert ":assumed-role/" in result.payload["caller"] and name in result.payload["caller"]
    assert result.payload["createUser"] == "AccessDenied"


def test_the_gateway_accepts_a_call_a_function_signs_with_its_role_session(
    fixture_env: LocalEnvironment,
) -> None:
    roles = fixture_env.functions.execution_roles
    spec = fixture_env.stack.functions["ProbeFunction"]
    assert roles is not None and spec.role is not None
    session = roles.session(spec.role, spec.name)
    url = f"{fixture_env.base_url}/items/42"
    request = AWSRequest(method="GET", url=url)
    credentials = Credentials(session.access_key_id, session.secret_access_key, session.session_token)
    SigV4Auth(credentials, "execute-api", fixture_env.cloud.region).add_auth(request)
    answer = requests.get(url, headers=dict(request.headers.items()), timeout=10)
    assert answer.status_code == 200, answer.text
    forged = {
        **dict(request.headers.items()),
        "Authorization": request.headers["Authorization"][:-4] + "0000",
    }
    assert requests.get(url, headers=forged, timeout=10).status_code == 403
