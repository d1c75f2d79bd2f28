"""Create a transformed template's resources in the local cloud, and describe the rest for the runtime.

moto's own CloudFormation cannot deploy a SAM-transformed template (see FIELD_NOTES), so this
module plays CloudFormation's part for the resource types the service uses: it creates them in
dependency order from their properties, knows their physical names, Ref and GetAtt values, and
resolves the function environment variables, alarms and outputs from them. Functions, APIs and
event sources are not created here but described (`FunctionSpec`, `rest_apis`, `QueueSource`,
`BucketSource`) for the local Lambda runtime. Every other resource type is listed in
`Stack.not_emulated` with the reason, never dropped silently. Provisioning is idempotent: running
it again over the same environment updates what it can and leaves data in place.
The creator of each resource type lives in `rehearsal.cloud.resources`; this module orders them and
owns the `Stack` the runtime and the deployer read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from rehearsal.alarms.evaluator import AlarmDefinition, CompositeAlarmDefinition, UnsupportedAlarmError
from rehearsal.base.errors import UserError
from rehearsal.cloud.descriptions import BucketSource, FunctionSpec, QueueSource, RestApi
from rehearsal.cloud.resources import ResourceCreators, as_text, function_arn
from rehearsal.cloud.schemas import invalid_properties
from rehearsal.cloud.server import LocalCloud
from rehearsal.cloud.template import (
    Resolver,
    StackIdentity,
    TransformedTemplate,
    UnresolvedReferenceError,
    transform_template,
)

_ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")


@dataclass(frozen=True, kw_only=True)
class StackAlarms:
    """A stack's alarms as CloudWatch would hold them, and the ones the rehearsal could not read."""

    metric: tuple[AlarmDefinition, ...]
    composite: tuple[CompositeAlarmDefinition, ...]
    problems: tuple[str, ...]  # one line per alarm left out: it is not evaluated offline


@dataclass
class Stack:
    """The provisioned environment: physical ids, resolver, and the parts the runtime serves."""

    environment: str
    identity: StackIdentity
    template: TransformedTemplate
    resolver: Resolver
    created: list[tuple[str, str, str]] = field(default_factory=list)  # (logical id, type, physical id)
    not_emulated: list[tuple[str, str, str]] = field(default_factory=list)  # (logical id, type, reason)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    queue_sources: list[QueueSource] = field(default_factory=list)
    bucket_sources: list[BucketSource] = field(default_factory=list)
    rest_apis: list[RestApi] = field(default_factory=list)
    # What the runtime published from this stack: each function's version, and the code and
    # configuration it was published from (what PublishVersion compares).
    function_versions: dict[str, str] = field(default_factory=dict)
    function_settings: dict[str, str] = field(default_factory=dict)

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The function's environment variables with every reference resolved."""
        resolved = self.resolver.resolve(self.functions[logical_id].environment)
        return {key: as_text(value) for key, value in resolved.items()}

    def record_version(self, logical_id: str, version: str) -> None:
        """Make `Ref`/`GetAtt` of the function's `AWS::Lambda::Version` resource mean `version`."""
        spec = self.functions[logical_id]
        self.function_versions[logical_id] = version
        if spec.version_logical_id is not None:
            arn = f"{function_arn(self.identity, spec.name)}:{version}"
            self.resolver.refs[spec.version_logical_id] = arn
            self.resolver.attributes[(spec.version_logical_id, "Version")] = version

    def alarms(self) -> StackAlarms:
        """The metric and composite alarms resolved now (after versions are recorded), by CloudWatch name.

        The name is the one `Ref` gives (what deployment groups and composite rules name), so it is
        the physical name: `AlarmName`, else CloudFormation's generated `<stack>-<LogicalId>-<suffix>`.
        """
        metric: list[AlarmDefinition] = []
        composite: list[CompositeAlarmDefinition] = []
        problems: list[str] = []
        for logical_id, resource in self.template.resources.items():
            kind = resource.get("Type")
            if kind not in _ALARM_TYPES or not self.resolver.resource_included(resource):
                continue
            name = str(
                self.resolver.refs.get(logical_id) or self.resolver.placeholders.get(logical_id) or logical_id
            )
            try:
                properties = self.resolver.resolve(resource.get("Properties", {}))
                if kind == "AWS::CloudWatch::Alarm":
                    metric.append(AlarmDefinition.from_properties(name, properties))
                else:
                    composite.append(CompositeAlarmDefinition.from_properties(name, properties))
            except UnresolvedReferenceError as error:
                problems.append(f"{logical_id}: refers to {error} which has no value yet")
            except UnsupportedAlarmError as error:
                problems.append(f"{logical_id}: {error}")
        return StackAlarms(metric=tuple(metric), composite=tuple(composite), problems=tuple(problems))

    def outputs(self, api_base_url: str | None = None) -> dict[str, str]:
        """The template's outputs; an API Gateway URL becomes the local gateway's base URL."""
        values: dict[str, str] = {}
        for name, output in (self.template.document.get("Outputs") or {}).items():
            if "Condition" in output and not self.resolver.condition(output["Condition"]):
                continue
            try:
                value = as_text(self.resolver.resolve(output["Value"]))
            except UnresolvedReferenceError:
                continue
            if api_base_url is not None:
                value = re.sub(
                    r"^https://[a-z0-9]+\.execute-api\.[^/]+/[^/]+", api_base_url.rstrip("/"), value
                )
            values[name] = value
        return values


def provision_stack(
    cloud: LocalCloud, template: TransformedTemplate, *, identity: StackIdentity, environment: str
) -> Stack:
    """Create (or update) the template's resources in `cloud`; return the `Stack` describing them."""
    stack = Stack(
        environment=environment,
        identity=identity,
        template=template,
        resolver=Resolver.for_template(template),
    )
    creators = ResourceCreators(cloud, stack)
    pending = {
        logical_id: resource
        for logical_id, resource in template.resources.items()
        if stack.resolver.resource_included(resource)
    }
    creators.name_functions_and_apis(pending)
    while pending:
        progressed = False
        for logical_id in list(pending):
            resource = pending[logical_id]
            try:
                creators.create(logical_id, resource)
            except UnresolvedReferenceError:
                continue
            del pending[logical_id]
            progressed = True
        if not progressed:
            names = ", ".join(sorted(pending))
            raise UserError(f"cannot provision {names}: they refer to resources that do not exist")
    return stack


def deploy_template(
    cloud: LocalCloud,
    document: dict[str, Any],
    *,
    identity: StackIdentity,
    environment: str,
    parameters: Mapping[str, str],
    base_dir: Path,
) -> Stack:
    """CloudFormation's part of a create: transform (SAM) and validate, then create the resources.
    The one sequence `make local` and a first deploy run."""
    template = prepare_template(
        document, identity=identity, environment=environment, parameters=parameters, base_dir=base_dir
    )
    return provision_stack(cloud, template, identity=identity, environment=environment)


def prepare_template(
    document: dict[str, Any],
    *,
    identity: StackIdentity,
    environment: str,
    parameters: Mapping[str, str],
    base_dir: Path,
) -> TransformedTemplate:
    """The template as CloudFormation processes it before changing anything: transformed (SAM) with the
    parameters it declares, and every property value its resource schema refuses reported in one line."""
    declared = document.get("Parameters") or {}
    values = {"Environment": environment, **parameters}
    template = transform_template(
        document,
        identity=identity,
        parameters={key: value for key, value in values.items() if key in declared},
        base_dir=base_dir,
    )
    problems = invalid_properties(template, identity.region)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"Properties validation failed: {problems[0]}{more}: fix the template")
    return template


# ---------------------------------------------------------------- updates and their rollback


def update_stack(cloud: LocalCloud, template: TransformedTemplate, *, deployed: Stack) -> Stack:
    """CloudFormation's update, up to its cleanup: the new template's resources created or updated in
    place (data kept), under the deployed stack's identity. What only the deployed stack has stays until
    `clean_up_stack` (after the whole update succeeded) or goes with `roll_back_stack`."""
    return provision_stack(cloud, template, identity=deployed.identity, environment=deployed.environment)


def clean_up_stack(cloud: LocalCloud, *, deployed: Stack, updated: Stack) -> list[str]:
    """UPDATE_COMPLETE_CLEANUP_IN_PROGRESS: delete what the update removed or replaced (DeletionPolicy
    allowing). Returns one line per resource it could not delete."""
    return _delete_unless_kept(cloud, gone=deployed, kept=updated, on_rollback=False)


def roll_back_stack(cloud: LocalCloud, *, deployed: Stack, updated: Stack) -> list[str]:
    """UPDATE_ROLLBACK: delete what the update created, then set the deployed template's resources back
    (attributes, notifications: what `provision_stack` sets). Returns one line per resource left over."""
    leftovers = _delete_unless_kept(cloud, gone=updated, kept=deployed, on_rollback=True)
    provision_stack(cloud, deployed.template, identity=deployed.identity, environment=deployed.environment)
    return leftovers


def _delete_unless_kept(cloud: LocalCloud, *, gone: Stack, kept: Stack, on_rollback: bool) -> list[str]:
    keep = {(kind, physical) for _, kind, physical in kept.created}
    keep_queues = {source.queue_url for source in kept.bucket_sources}
    problems: list[str] = []
    for logical_id, kind, physical in reversed(gone.created):
        if (kind, physical) in keep or _retained(gone.template.resources.get(logical_id, {}), on_rollback):
            continue
        try:
            _delete(cloud, kind, physical)
        except ClientError as error:  # CloudFormation leaves it too (DELETE_FAILED): say so
            problems.append(f"{logical_id} ({kind}) {physical} not deleted: {error}")
    for source in gone.bucket_sources:  # the internal queues that carry S3 notifications to functions
        if source.queue_url not in keep_queues:
            cloud.client("sqs").delete_queue(QueueUrl=source.queue_url)
    return problems


def _retained(resource: Mapping[str, Any], on_rollback: bool) -> bool:
    """DeletionPolicy: Retain keeps a resource in both cases; RetainExceptOnCreate only on cleanup."""
    policy = resource.get("DeletionPolicy", "Delete")
    return bool(policy == "Retain" or (policy == "RetainExceptOnCreate" and not on_rollback))


def _delete(cloud: LocalCloud, kind: str, physical: str) -> None:
    if kind == "AWS::DynamoDB::Table":
        cloud.client("dynamodb").delete_table(TableName=physical)
    elif kind == "AWS::SQS::Queue":
        cloud.client("sqs").delete_queue(QueueUrl=physical)
    elif kind == "AWS::S3::Bucket":  # fails when not empty, as CloudFormation's delete does
        cloud.client("s3").delete_bucket(Bucket=physical)
    elif kind == "AWS::SNS::Topic":
        cloud.client("sns").delete_topic(TopicArn=physical)
    elif kind == "AWS::SNS::Subscription":
        cloud.client("sns").unsubscribe(SubscriptionArn=physical)
