"""The SNS topics people subscribe to by e-mail: encrypted with the pipeline's key, TLS only."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


def email_topic(
    scope: Construct, *, display_name: str, emails: Sequence[str], encryption_key: kms.IKey
) -> sns.Topic:
    """A topic `Topic` under `scope` with one e-mail subscription per address."""
    topic = sns.Topic(scope, "Topic", display_name=display_name, master_key=encryption_key, enforce_ssl=True)
    for email in emails:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic
