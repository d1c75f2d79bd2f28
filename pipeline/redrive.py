"""`make redrive ENV=...`: move the messages of a service stack's dead-letter queues back to their queues.

On AWS (ENV=staging or production) it finds the stack's queues through CloudFormation, pairs each
dead-letter queue with the queue whose redrive policy names it, and starts one SQS message move task
per dead-letter queue that holds messages: SQS moves them itself, asynchronously.
Against `make local` (ENV=local, with AWS_ENDPOINT_URL from its summary) the local cloud is moto, which
has no message move tasks (moto 5.2.5): the messages are received, sent to the source queue and only
then deleted, ten at a time, so a failure leaves them in the dead-letter queue, never lost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, PipelineConfig
from pipeline.preflight import NO_CREDENTIALS

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"
LOCAL = "local"
# The local cloud's documented fake credentials (make local prints them); never sent to AWS.
LOCAL_ACCESS_KEY_ID = "test"
LOCAL_SECRET_ACCESS_KEY = "test"  # nosec B105 # the local cloud's documented fake credential
LOCAL_REGION = "us-east-1"
# A received message stays hidden this long; one that could not be sent comes back after it.
_RECEIVE_VISIBILITY_SECONDS = 60
_BATCH = 10


class RedriveError(Exception):
    """Something the operator must fix; the message says what and how, in one line."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where the stack is: on AWS (stack name, region, account) or in the local cloud."""

    environment: str
    stack_name: str
    region: str
    account: str
    endpoint_url: str

    @property
    def local(self) -> bool:
        return self.environment == LOCAL


@dataclass(frozen=True, kw_only=True)
class QueuePair:
    """A dead-letter queue, the queue its messages came from, and how many wait in it."""

    dead_letter_url: str
    dead_letter_arn: str
    source_url: str
    source_arn: str
    waiting: int

    @property
    def dead_letter_name(self) -> str:
        return self.dead_letter_url.rstrip("/").rsplit("/", 1)[-1]


def resolve_target(environment: str, environ: Mapping[str, str], *, cdk_json: Path = CDK_JSON) -> Target:
    """The stack ENV names; refuses an unknown ENV and a local endpoint for an AWS environment."""
    endpoint_url = environ.get("AWS_ENDPOINT_URL", "")
    if environment == LOCAL:
        if not endpoint_url:
            raise RedriveError(
                "ENV=local needs the local cloud's address: run make local, then "
                "AWS_ENDPOINT_URL=<the URL its summary prints> make redrive ENV=local"
            )
        return Target(
            environment=LOCAL, stack_name=LOCAL, region=LOCAL_REGION, account="", endpoint_url=endpoint_url
        )
    try:
        config = PipelineConfig.from_context(json.loads(cdk_json.read_text(encoding="utf-8"))["context"])
    except (OSError, KeyError, ValueError, ConfigError) as error:
        raise RedriveError(f"cannot read the environments from {cdk_json}: {error}") from error
    environments = {env.name: env for env in config.environments}
    if environment not in environments:
        names = ", ".join([*environments, LOCAL])
        raise RedriveError(f"ENV={environment!r} is not an environment: use one of {names}")
    if endpoint_url:
        raise RedriveError(
            f"AWS_ENDPOINT_URL is set ({endpoint_url}) but ENV={environment} is on AWS: "
            "unset AWS_ENDPOINT_URL, or use ENV=local for make local"
        )
    chosen = environments[environment]
    return Target(
        environment=environment,
        stack_name=chosen.stack_name,
        region=chosen.region,
        account=chosen.account,
        endpoint_url="",
    )


def stack_queue_urls(session: Any, target: Target) -> list[str]:
    """Every SQS queue of the stack: CloudFormation's resources on AWS, every queue of the local cloud."""
    if target.local:
        return list(session.client("sqs").list_queues().get("QueueUrls", []))
    from botocore.exceptions import ClientError  # noqa: PLC0415 - only when it talks to AWS

    cloudformation = session.client("cloudformation")
    urls: list[str] = []
    try:
        for page in cloudformation.get_paginator("list_stack_resources").paginate(
            StackName=target.stack_name
        ):
            urls.extend(
                resource["PhysicalResourceId"]
                for resource in page["StackResourceSummaries"]
                if resource["ResourceType"] == "AWS::SQS::Queue" and resource.get("PhysicalResourceId")
            )
    except ClientError as error:
        if "does not exist" in str(error):
            raise RedriveError(
                f"no stack {target.stack_name} in {target.region}: deploy it first, or sign in to the "
                f"{target.environment} account (AWS_PROFILE)"
            ) from error
        raise
    return urls


def dead_letter_pairs(sqs: Any, queue_urls: Sequence[str]) -> list[QueuePair]:
    """Pair every dead-letter queue among `queue_urls` with the queue whose redrive policy names it."""
    attributes = {
        url: sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy", "ApproximateNumberOfMessages"]
        )["Attributes"]
        for url in queue_urls
    }
    url_by_arn = {found["QueueArn"]: url for url, found in attributes.items()}
    pairs = []
    for url, found in sorted(attributes.items()):
        dead_letter_arn = json.loads(found.get("RedrivePolicy") or "{}").get("deadLetterTargetArn")
        if dead_letter_arn in url_by_arn:
            dead_letter_url = url_by_arn[dead_letter_arn]
            pairs.append(
                QueuePair(
                    dead_letter_url=dead_letter_url,
                    dead_letter_arn=dead_letter_arn,
                    source_url=url,
                    source_arn=found["QueueArn"],
                    waiting=int(attributes[dead_letter_url].get("ApproximateNumberOfMessages", 0)),
                )
            )
    return pairs


def choose(pairs: Sequence[QueuePair], *, queue: str, target: Target) -> list[QueuePair]:
    """The dead-letter queues to redrive: those holding messages, among those whose name contains QUEUE."""
    where = target.stack_name if not target.local else f"the local cloud at {target.endpoint_url}"
    if not pairs:
        raise RedriveError(f"{where} has no dead-letter queue (no queue has a redrive policy)")
    named = [pair for pair in pairs if queue in pair.dead_letter_name]
    if not named:
        names = ", ".join(pair.dead_letter_name for pair in pairs)
        raise RedriveError(
            f"no dead-letter queue of {where} matches QUEUE={queue!r}: choose a part of {names}"
        )
    sources: dict[str, set[str]] = {}
    for pair in named:
        sources.setdefault(pair.dead_letter_arn, set()).add(pair.source_arn)
    shared = [arn for arn, found in sources.items() if len(found) > 1]
    if shared and target.local:
        raise RedriveError(
            f"{shared[0]} is the dead-letter queue of {len(sources[shared[0]])} queues: the local move "
            "cannot tell which message came from which; redrive it on AWS, or give each queue its own"
        )
    waiting = list({pair.dead_letter_arn: pair for pair in named if pair.waiting > 0}.values())
    if not waiting:
        names = ", ".join(sorted({pair.dead_letter_name for pair in named}))
        raise RedriveError(f"nothing to redrive: no messages in {names}")
    return waiting


def start_move_task(sqs: Any, pair: QueuePair) -> str:
    """AWS: one message move task; without DestinationArn SQS returns each message to its own source queue."""
    handle = str(sqs.start_message_move_task(SourceArn=pair.dead_letter_arn)["TaskHandle"])
    return (
        f"{pair.dead_letter_name}: SQS is moving about {pair.waiting} messages back to their source queue "
        f"(task {handle}); follow it with aws sqs list-message-move-tasks --source-arn {pair.dead_letter_arn}"
    )


def move_messages(sqs: Any, pair: QueuePair) -> str:
    """Local cloud: receive, send to the source queue, delete only what was sent; at most `waiting`."""
    moved = 0
    # Bounded by the count at the start: a message that fails again and returns must not loop forever.
    while moved < pair.waiting:
        received = sqs.receive_message(
            QueueUrl=pair.dead_letter_url,
            MaxNumberOfMessages=min(_BATCH, pair.waiting - moved),
            MessageAttributeNames=["All"],
            VisibilityTimeout=_RECEIVE_VISIBILITY_SECONDS,
        ).get("Messages", [])
        if not received:
            break
        moved += _send_then_delete(sqs, pair, received)
    return f"{pair.dead_letter_name}: moved {moved} messages back to {pair.source_url.rsplit('/', 1)[-1]}"


def _send_then_delete(sqs: Any, pair: QueuePair, received: Sequence[Mapping[str, Any]]) -> int:
    entries = []
    for index, message in enumerate(received):
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
        if message.get("MessageAttributes"):
            entry["MessageAttributes"] = message["MessageAttributes"]
        entries.append(entry)
    sent = sqs.send_message_batch(QueueUrl=pair.source_url, Entries=entries)
    done = [received[int(entry["Id"])] for entry in sent.get("Successful", [])]
    if done:
        sqs.delete_message_batch(
            QueueUrl=pair.dead_letter_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
        )
    if sent.get("Failed"):
        failure = sent["Failed"][0]
        raise RedriveError(
            f"sending to {pair.source_url} failed ({failure.get('Code')}: {failure.get('Message')}); "
            f"{len(done)} were moved, the rest stay in {pair.dead_letter_name}: fix it and run "
            "make redrive again"
        )
    return len(done)


def session_for(target: Target) -> Any:
    """A boto3 session for the target: the local cloud's fake credentials, or the caller's own."""
    import boto3  # noqa: PLC0415 - only when it talks to a cloud

    if target.local:
        local = boto3.session.Session(
            region_name=target.region,
            aws_access_key_id=LOCAL_ACCESS_KEY_ID,
            aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
        )
        return _LocalSession(local, target)
    return boto3.session.Session(region_name=target.region)


class _LocalSession:
    """Clients of the local cloud, at its endpoint."""

    def __init__(self, session: Any, target: Target) -> None:
        self._session = session
        self._endpoint_url = target.endpoint_url

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint_url)


def check_account(session: Any, target: Target) -> None:
    """On AWS the caller must be signed in to the environment's account, or the stack would look absent."""
    if target.local:
        return
    from botocore.exceptions import NoCredentialsError  # noqa: PLC0415 - only when it talks to AWS

    try:
        account = session.client("sts").get_caller_identity()["Account"]
    except NoCredentialsError as error:
        raise RedriveError(NO_CREDENTIALS) from error
    if account != target.account:
        raise RedriveError(
            f"signed in to account {account}, but {target.environment} is account {target.account}: "
            f"use that account's profile (AWS_PROFILE=<profile> make redrive ENV={target.environment})"
        )


def redrive(
    target: Target, *, queue: str, session_factory: Callable[[Target], Any] = session_for
) -> list[str]:
    """Redrive the target's dead-letter queues; one line per queue."""
    session = session_factory(target)
    check_account(session, target)
    sqs = session.client("sqs")
    pairs = choose(dead_letter_pairs(sqs, stack_queue_urls(session, target)), queue=queue, target=target)
    move = move_messages if target.local else start_move_task
    return [move(sqs, pair) for pair in pairs]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="make redrive", description=__doc__)
    parser.add_argument("--env", required=True, help="staging, production (cdk.json) or local (make local)")
    parser.add_argument("--queue", default="", help="only the dead-letter queues whose name contains this")
    args = parser.parse_args(argv)
    try:
        target = resolve_target(args.env, os.environ if environ is None else environ)
        for line in redrive(target, queue=args.queue):
            print(line)
    except RedriveError as error:
        print(f"make redrive: {error}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"make redrive: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
