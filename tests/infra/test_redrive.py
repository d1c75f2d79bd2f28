"""`make redrive`: dead-lettered messages go back to their queues, against a moto server on loopback.

The local cloud of `make local` is moto; so is the server here. On AWS the move is SQS's own
StartMessageMoveTask, which moto 5.2.5 does not implement: that one call is recorded by a small
wrapper, everything else (CloudFormation, STS, SQS) is answered by moto.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from moto.server import ThreadedMotoServer

from pipeline import redrive
from pipeline.redrive import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, Target

MOTO_ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def cloud(endpoint: str) -> Iterator[Any]:
    session = boto3.session.Session(
        region_name="us-east-1",
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
    )
    yield lambda service: session.client(service, endpoint_url=endpoint)
    # Each test starts from an empty cloud: moto's own reset endpoint.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()


def _queue_pair(sqs: Any, name: str) -> tuple[str, str]:
    dead_letter = sqs.create_queue(QueueName=f"{name}DeadLetterQueue")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dead_letter, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
    source = sqs.create_queue(QueueName=f"{name}Queue", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    return source, dead_letter


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
    ).get("Messages", []):
        found.extend(batch)
    return found


def _run(endpoint: str, *args: str) -> int:
    return redrive.main(["--env", "local", *args], environ={"AWS_ENDPOINT_URL": endpoint})


def test_local_redrive_moves_every_dead_lettered_message_back_with_its_attributes(
    endpoint: str, cloud: Any
) -> None:
    sqs = cloud("sqs")
    source, dead_letter = _queue_pair(sqs, "Orders")
    attributes = {"kind": {"DataType": "String", "StringValue": "order"}}
    for number in range(12):
        sqs.send_message(QueueUrl=dead_letter, MessageBody=f"order-{number}", MessageAttributes=attributes)

    assert _run(endpoint) == 0

    moved = _drain(sqs, source)
    assert sorted(m["Body"] for m in moved) == sorted(f"order-{n}" for n in range(12))
    assert all(m["MessageAttributes"]["kind"]["StringValue"] == "order" for m in moved)
    assert _drain(sqs, dead_letter) == []


def test_local_redrive_with_queue_moves_only_the_named_dead_letter_queue(endpoint: str, cloud: Any) -> None:
    sqs = cloud("sqs")
    orders, orders_dead = _queue_pair(sqs, "Orders")
    attachments, attachments_dead = _queue_pair(sqs, "Attachments")
    sqs.send_message(QueueUrl=orders_dead, MessageBody="order")
    sqs.send_message(QueueUrl=attachments_dead, MessageBody="upload")

    assert _run(endpoint, "--queue", "AttachmentsDead") == 0

    assert [m["Body"] for m in _drain(sqs, attachments)] == ["upload"]
    assert [m["Body"] for m in _drain(sqs, orders_dead)] == ["order"]
    assert _drain(sqs, orders) == []


def test_empty_dead_letter_queues_end_with_one_line_and_a_non_zero_exit(
    endpoint: str, cloud: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _queue_pair(cloud("sqs"), "Orders")

    assert _run(endpoint) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nothing to redrive: no messages in OrdersDeadLetterQueue" in err


def test_a_cloud_without_dead_letter_queues_is_refused(
    endpoint: str, cloud: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cloud("sqs").create_queue(QueueName="lonely")

    assert _run(endpoint) == 2
    assert "has no dead-letter queue" in capsys.readouterr().err


def test_a_queue_name_that_matches_no_dead_letter_queue_lists_the_ones_there_are(
    endpoint: str, cloud: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _queue_pair(cloud("sqs"), "Orders")

    assert _run(endpoint, "--queue", "Nope") == 2
    assert "choose a part of OrdersDeadLetterQueue" in capsys.readouterr().err


def test_a_local_move_that_cannot_send_deletes_nothing(cloud: Any) -> None:
    sqs = cloud("sqs")
    _, dead_letter = _queue_pair(sqs, "Orders")
    sqs.send_message(QueueUrl=dead_letter, MessageBody="order")
    arn = sqs.get_queue_attributes(QueueUrl=dead_letter, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    gone = dead_letter.replace("OrdersDeadLetterQueue", "DeletedQueue")
    pair = redrive.QueuePair(
        dead_letter_url=dead_letter, dead_letter_arn=arn, source_url=gone, source_arn="", waiting=1
    )

    with pytest.raises(ClientError):
        redrive.move_messages(sqs, pair)

    counts = sqs.get_queue_attributes(QueueUrl=dead_letter, AttributeNames=["All"])["Attributes"]
    # Received (hidden for the visibility timeout), never deleted: it comes back.
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_an_unknown_env_is_refused_with_the_environments_to_choose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert redrive.main(["--env", "prod"], environ={}) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "ENV='prod' is not an environment: use one of staging, production, local" in err


def test_env_local_without_an_endpoint_says_where_to_find_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert redrive.main(["--env", "local"], environ={}) == 2
    assert "AWS_ENDPOINT_URL=<the URL its summary prints>" in capsys.readouterr().err


def test_an_aws_env_with_a_local_endpoint_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert redrive.main(["--env", "staging"], environ={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}) == 2
    assert "unset AWS_ENDPOINT_URL" in capsys.readouterr().err


# ------------------------------------------------------------------ on AWS (CloudFormation + move tasks)

STACK_TEMPLATE = {
    "Resources": {
        "OrdersDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
        "OrdersQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["OrdersDeadLetterQueue", "Arn"]},
                    "maxReceiveCount": 5,
                }
            },
        },
    }
}


class _RecordingSqs:
    """moto's SQS client, except StartMessageMoveTask (not in moto), which is recorded."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.move_tasks: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def start_message_move_task(self, **kwargs: Any) -> dict[str, Any]:
        self.move_tasks.append(kwargs)
        return {"TaskHandle": "task-1"}


class _MotoSession:
    def __init__(self, cloud: Any) -> None:
        self._cloud = cloud
        self.sqs = _RecordingSqs(cloud("sqs"))

    def client(self, service: str) -> Any:
        return self.sqs if service == "sqs" else self._cloud(service)


def _aws_target(*, stack_name: str = "orders-staging", account: str = MOTO_ACCOUNT) -> Target:
    return Target(
        environment="staging", stack_name=stack_name, region="us-east-1", account=account, endpoint_url=""
    )


def _stack_with_dead_letters(cloud: Any, count: int) -> str:
    cloud("cloudformation").create_stack(StackName="orders-staging", TemplateBody=json.dumps(STACK_TEMPLATE))
    sqs = cloud("sqs")
    dead_letter = next(u for u in sqs.list_queues()["QueueUrls"] if "OrdersDeadLetterQueue" in u)
    for number in range(count):
        sqs.send_message(QueueUrl=dead_letter, MessageBody=f"order-{number}")
    arn: str = sqs.get_queue_attributes(QueueUrl=dead_letter, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return arn


def test_aws_redrive_starts_one_move_task_from_the_stacks_dead_letter_queue(cloud: Any) -> None:
    dead_letter_arn = _stack_with_dead_letters(cloud, 3)
    session = _MotoSession(cloud)

    lines = redrive.redrive(_aws_target(), queue="", session_factory=lambda _: session)

    # No DestinationArn: SQS sends each message back to the queue it came from.
    assert session.sqs.move_tasks == [{"SourceArn": dead_letter_arn}]
    assert "about 3 messages" in lines[0]
    assert f"aws sqs list-message-move-tasks --source-arn {dead_letter_arn}" in lines[0]


def test_aws_redrive_of_a_stack_that_does_not_exist_says_to_deploy_it(cloud: Any) -> None:
    session = _MotoSession(cloud)

    with pytest.raises(
        redrive.RedriveError, match="no stack orders-production in us-east-1: deploy it first"
    ):
        redrive.redrive(
            _aws_target(stack_name="orders-production"), queue="", session_factory=lambda _: session
        )


def test_aws_redrive_signed_in_to_another_account_is_refused(cloud: Any) -> None:
    session = _MotoSession(cloud)

    with pytest.raises(
        redrive.RedriveError, match="signed in to account 123456789012, but staging is account"
    ):
        redrive.redrive(_aws_target(account="222222222222"), queue="", session_factory=lambda _: session)


def test_aws_redrive_without_credentials_says_how_to_sign_in() -> None:
    class _NoCredentials:
        def client(self, service: str) -> Any:
            class _Sts:
                def get_caller_identity(self) -> dict[str, str]:
                    raise NoCredentialsError

            return _Sts()

    with pytest.raises(redrive.RedriveError, match="No usable AWS credentials: sign in"):
        redrive.redrive(_aws_target(), queue="", session_factory=lambda _: _NoCredentials())
