"""CloudFormation's part for the resource types the service uses: create each one in the local cloud.

One creator per resource type (DynamoDB, SQS, S3, SNS, …) records its physical name, Ref and GetAtt
values on the stack's resolver; `rehearsal.cloud.provision` orders the calls and owns the `Stack`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rehearsal.base.aws import (
    LAMBDA_DEFAULT_MEMORY_MB,
    LAMBDA_DEFAULT_TIMEOUT_SECONDS,
    SQS_DEFAULT_BATCH_SIZE,
)
from rehearsal.base.errors import UserError
from rehearsal.cloud.descriptions import BucketSource, FunctionSpec, QueueSource, RestApi
from rehearsal.cloud.roles import SEPARATE_POLICY_PREFIX, enforceable_policy, put_role
from rehearsal.cloud.server import LocalCloud
from rehearsal.cloud.template import (
    LOCAL_CODE_BUCKET,
    Resolver,
    StackIdentity,
    TransformedTemplate,
    UnresolvedReferenceError,
)

# Types the runtime emulates from their description (not created in moto).
_DESCRIBED = {
    "AWS::Lambda::Function": "run by the local Lambda runtime",
    "AWS::Lambda::Version": "published by the local Lambda runtime",
    "AWS::Lambda::Alias": "routed by the local Lambda runtime",
    "AWS::Lambda::EventSourceMapping": "polled by the local Lambda runtime",
    "AWS::ApiGateway::RestApi": "served by the local gateway",
    "AWS::ApiGateway::Stage": "served by the local gateway",
    "AWS::ApiGateway::Deployment": "served by the local gateway",
    "AWS::CloudWatch::Alarm": "evaluated by the local alarm evaluator",
    "AWS::Events::Rule": "scheduled rules fired by the local scheduler (rehearsal.runtime.schedules)",
}
# Types with no local behaviour: listed in the output with why.
_NOT_EMULATED = {
    "AWS::Lambda::Permission": "resource policies are not enforced locally",
    "AWS::Lambda::LayerVersion": "a layer the template creates is not built (public Powertools layers are)",
    "AWS::SQS::QueuePolicy": "resource policies are not enforced locally",
    "AWS::S3::BucketPolicy": "resource policies are not enforced locally",
    "AWS::SNS::TopicPolicy": "resource policies are not enforced locally",
    "AWS::Logs::LogGroup": "function logs are streamed to the console, not stored",
    "AWS::CodeDeploy::Application": "traffic shifting is the rehearsal deployer's job",
    "AWS::CodeDeploy::DeploymentGroup": "traffic shifting is the rehearsal deployer's job",
    "AWS::ApiGateway::Account": "API Gateway account settings have no local effect",
    "AWS::ApiGateway::UsagePlan": "usage plans and throttling are not enforced locally",
    "AWS::ApiGateway::ApiKey": "API keys are not enforced locally",
    "AWS::KMS::Key": "encryption at rest is not emulated",
}


class ProvisionedStack(Protocol):
    """What the creators record into: the parts of `rehearsal.cloud.provision.Stack` they fill in."""

    identity: StackIdentity
    template: TransformedTemplate
    resolver: Resolver
    created: list[tuple[str, str, str]]
    not_emulated: list[tuple[str, str, str]]
    functions: dict[str, FunctionSpec]
    queue_sources: list[QueueSource]
    bucket_sources: list[BucketSource]
    rest_apis: list[RestApi]


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def function_arn(identity: StackIdentity, name: str) -> str:
    return f"arn:aws:lambda:{identity.region}:{identity.account_id}:function:{name}"


def physical_name(identity: StackIdentity, logical_id: str, *, limit: int = 64, lower: bool = False) -> str:
    """CloudFormation-like generated name: `<stack>-<LogicalId>` (deterministic: no random suffix)."""
    name = f"{identity.stack_name}-{logical_id}"
    if len(name) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9]}-{digest}"
    return name.lower() if lower else name


class ResourceCreators:
    """One method per resource type; each records Ref and GetAtt values on the stack's resolver."""

    def __init__(self, cloud: LocalCloud, stack: ProvisionedStack) -> None:
        self.cloud = cloud
        self.stack = stack
        self.identity = stack.identity
        self.resolver = stack.resolver
        self.queue_urls_by_arn: dict[str, str] = {}

    def _handlers(self) -> dict[str, Callable[[str, dict[str, Any]], str]]:
        return {
            "AWS::DynamoDB::Table": self.table,
            "AWS::SQS::Queue": self.queue,
            "AWS::S3::Bucket": self.bucket,
            "AWS::SNS::Topic": self.topic,
            "AWS::SNS::Subscription": self.subscription,
            "AWS::Lambda::Function": self.function,
            "AWS::Lambda::EventSourceMapping": self.event_source_mapping,
            "AWS::ApiGateway::RestApi": self.rest_api,
            "AWS::CloudWatch::Alarm": self.alarm,
            "AWS::IAM::Role": self.role,
            "AWS::IAM::Policy": self.policy,
            "AWS::IAM::ManagedPolicy": self.managed_policy,
        }

    def name_functions_and_apis(self, resources: dict[str, dict[str, Any]]) -> None:
        """Names known before anything exists, so that notifications and URIs can refer to them."""
        for logical_id, resource in resources.items():
            kind, properties = resource["Type"], resource.get("Properties", {})
            if kind == "AWS::Lambda::Function":
                given = properties.get("FunctionName")
                name = (
                    str(self.resolver.resolve(given)) if given else physical_name(self.identity, logical_id)
                )
                self.resolver.refs[logical_id] = name
                self.resolver.attributes[(logical_id, "Arn")] = function_arn(self.identity, name)
            elif kind == "AWS::ApiGateway::RestApi":
                api_id = hashlib.sha256(f"{self.identity.stack_name}/{logical_id}".encode()).hexdigest()[:10]
                self.resolver.refs[logical_id] = api_id
                self.resolver.attributes[(logical_id, "RootResourceId")] = api_id[:6]
        for logical_id, resource in resources.items():
            if resource["Type"] == "AWS::Lambda::Alias":
                properties = resource["Properties"]
                function_name = self.resolver.resolve(properties["FunctionName"])
                arn = f"{function_arn(self.identity, function_name)}:{properties['Name']}"
                self.resolver.refs[logical_id] = arn

    def create(self, logical_id: str, resource: dict[str, Any]) -> None:
        kind = resource["Type"]
        handler = self._handlers().get(kind)
        if handler is None:
            if kind != "AWS::Lambda::Version":  # a version's Ref waits for the runtime to publish it
                self.resolver.placeholders[logical_id] = physical_name(self.identity, logical_id)
            if kind not in _DESCRIBED:
                reason = _NOT_EMULATED.get(kind, "this resource type is not emulated by the rehearsal")
                self.stack.not_emulated.append((logical_id, kind, reason))
            return
        physical = handler(logical_id, resource.get("Properties", {}))
        self.stack.created.append((logical_id, kind, physical))

    def table(self, logical_id: str, properties: dict[str, Any]) -> str:
        props = self.resolver.resolve(properties)
        name = props.get("TableName") or physical_name(self.identity, logical_id, limit=255)
        client = self.cloud.client("dynamodb")
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        for key in ("ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in props:
                request[key] = props[key]
        if request["BillingMode"] == "PROVISIONED" and "ProvisionedThroughput" not in request:
            request["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        try:
            description = client.create_table(**request)["TableDescription"]
        except client.exceptions.ResourceInUseException:
            description = client.describe_table(TableName=name)["Table"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        self.resolver.refs[logical_id] = name
        self.resolver.attributes[(logical_id, "Arn")] = description["TableArn"]
        if "LatestStreamArn" in description:
            self.resolver.attributes[(logical_id, "StreamArn")] = description["LatestStreamArn"]
        return str(name)

    def queue(self, logical_id: str, properties: dict[str, Any]) -> str:
        props = self.resolver.resolve(properties)
        fifo = bool(props.get("FifoQueue"))
        name = props.get("QueueName") or physical_name(self.identity, logical_id, limit=75 if fifo else 80)
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {
            key: as_text(value)
            if isinstance(value, dict)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for key, value in props.items()
            if key not in ("QueueName", "Tags")
        }
        client = self.cloud.client("sqs")
        url = client.create_queue(QueueName=name, Attributes={"FifoQueue": "true"} if fifo else {})[
            "QueueUrl"
        ]
        client.set_queue_attributes(
            QueueUrl=url, Attributes={k: v for k, v in attributes.items() if k != "FifoQueue"}
        )
        arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.queue_urls_by_arn[arn] = url
        self.resolver.refs[logical_id] = url
        self.resolver.attributes.update(
            {(logical_id, "Arn"): arn, (logical_id, "QueueName"): name, (logical_id, "QueueUrl"): url}
        )
        return str(url)

    def bucket(self, logical_id: str, properties: dict[str, Any]) -> str:
        props = self.resolver.resolve(properties)
        name = props.get("BucketName") or physical_name(self.identity, logical_id, limit=63, lower=True)
        client = self.cloud.client("s3")
        existing = {entry["Name"] for entry in client.list_buckets().get("Buckets", [])}
        if name not in existing:
            self.cloud.create_bucket(name)
        if (props.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if "CorsConfiguration" in props:
            client.put_bucket_cors(
                Bucket=name, CORSConfiguration={"CORSRules": props["CorsConfiguration"]["CorsRules"]}
            )
        self._bucket_notifications(name, props.get("NotificationConfiguration") or {})
        self.resolver.refs[logical_id] = name
        self.resolver.attributes.update(
            {
                (logical_id, "Arn"): f"arn:aws:s3:::{name}",
                (logical_id, "DomainName"): f"{name}.s3.amazonaws.com",
                (logical_id, "RegionalDomainName"): f"{name}.s3.{self.identity.region}.amazonaws.com",
            }
        )
        return str(name)

    def _bucket_notifications(self, bucket: str, configuration: dict[str, Any]) -> None:
        """Lambda targets become internal queues (moto delivers S3 events to SQS), polled for the function."""
        queues: list[dict[str, Any]] = [
            {"QueueArn": item["Queue"], "Events": [item["Event"]], **_filter(item)}
            for item in configuration.get("QueueConfigurations", [])
        ]
        topics = [
            {"TopicArn": item["Topic"], "Events": [item["Event"]], **_filter(item)}
            for item in configuration.get("TopicConfigurations", [])
        ]
        sqs = self.cloud.client("sqs")
        for index, item in enumerate(configuration.get("LambdaConfigurations", [])):
            queue_name = f"rehearsal-s3-events-{hashlib.sha256(bucket.encode()).hexdigest()[:12]}-{index}"
            url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            queues.append({"QueueArn": arn, "Events": [item["Event"]], **_filter(item)})
            self.stack.bucket_sources.append(
                BucketSource(bucket=bucket, function=item["Function"], queue_url=url, events=(item["Event"],))
            )
        if queues or topics:
            self.cloud.client("s3").put_bucket_notification_configuration(
                Bucket=bucket,
                NotificationConfiguration={"QueueConfigurations": queues, "TopicConfigurations": topics},
            )

    def topic(self, logical_id: str, properties: dict[str, Any]) -> str:
        props = self.resolver.resolve(properties)
        name = props.get("TopicName") or physical_name(self.identity, logical_id, limit=256)
        client = self.cloud.client("sns")
        arn = client.create_topic(Name=name)["TopicArn"]
        for subscription in props.get("Subscription", []):
            client.subscribe(
                TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"]
            )
        self.resolver.refs[logical_id] = arn
        self.resolver.attributes.update({(logical_id, "TopicArn"): arn, (logical_id, "TopicName"): name})
        return str(arn)

    def subscription(self, logical_id: str, properties: dict[str, Any]) -> str:
        props = self.resolver.resolve(properties)
        client = self.cloud.client("sns")
        arn = client.subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
        )
        self.resolver.refs[logical_id] = arn["SubscriptionArn"]
        return str(arn["SubscriptionArn"])

    def alarm(self, logical_id: str, properties: dict[str, Any]) -> str:
        name = properties.get("AlarmName") or physical_name(self.identity, logical_id, limit=255)
        self.resolver.refs[logical_id] = name
        self.resolver.attributes[(logical_id, "Arn")] = (
            f"arn:aws:cloudwatch:{self.identity.region}:{self.identity.account_id}:alarm:{name}"
        )
        return str(name)

    def role(self, logical_id: str, properties: dict[str, Any]) -> str:
        """The role with its trust, inline and managed policies, enforced by the local cloud (ADR 0043)."""
        apart = ("Policies", "AssumeRolePolicyDocument")
        props = self.resolver.resolve({key: value for key, value in properties.items() if key not in apart})
        name = str(props.get("RoleName") or physical_name(self.identity, logical_id, limit=64))
        inline, dropped = self._inline_policies(properties.get("Policies") or [])
        trust, unreadable = self._trust(properties.get("AssumeRolePolicyDocument") or {})
        arn, notes = put_role(
            self.cloud.client("iam"),
            name=name,
            path=str(props.get("Path", "/")),
            trust=trust,
            inline=inline,
            managed=[str(arn) for arn in props.get("ManagedPolicyArns") or ()],
            lambda_stand_in=self.cloud.administrator_arn,
        )
        notes += dropped + unreadable
        if props.get("PermissionsBoundary"):
            notes += (f"PermissionsBoundary {props['PermissionsBoundary']} is not enforced",)
        for note in notes:
            self.stack.not_emulated.append((logical_id, "AWS::IAM::Role", note))
        role_id = self.cloud.client("iam").get_role(RoleName=name)["Role"]["RoleId"]
        self.resolver.refs[logical_id] = name
        self.resolver.attributes.update({(logical_id, "Arn"): arn, (logical_id, "RoleId"): role_id})
        return name

    def _inline_policies(self, policies: Any) -> tuple[dict[str, dict[str, Any]], tuple[str, ...]]:
        """Resolved inline policies. A statement naming a function version is dropped (a note says so):
        versions are published by the runtime after the roles exist, and what such a statement allows
        (invoking a version) goes to the local control plane, which checks no policy anyway."""
        try:
            resolved = self.resolver.resolve(policies)
            return {str(item["PolicyName"]): item["PolicyDocument"] for item in resolved}, ()
        except UnresolvedReferenceError as error:
            if not self._is_version(str(error)) or not isinstance(policies, list):
                raise
        inline: dict[str, dict[str, Any]] = {}
        notes: list[str] = []
        for item in policies:
            name, document = str(self.resolver.resolve(item["PolicyName"])), item["PolicyDocument"]
            statements: list[Any] = []
            for statement in _statements(document):
                try:
                    statements.append(self.resolver.resolve(statement))
                except UnresolvedReferenceError as error:
                    if not self._is_version(str(error)):
                        raise
                    sid = statement.get("Sid", "a statement")
                    notes.append(f"{name}: {sid} names version {error}, published after the role: dropped")
            inline[name] = {"Version": document.get("Version", "2012-10-17"), "Statement": statements}
        return inline, tuple(notes)

    def _trust(self, document: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The resolved trust policy; one the rehearsal's stand-in values cannot resolve (a parameter
        that is an ARN on AWS and a name offline) trusts nobody here, which the note says."""
        try:
            return self.resolver.resolve(document), ()
        except UnresolvedReferenceError:
            raise
        except (IndexError, KeyError, TypeError, ValueError) as error:
            reason = f"{type(error).__name__}: {error}"
            return {}, (f"trust policy not resolvable offline ({reason}): nothing may assume the role here",)

    def _is_version(self, name: str) -> bool:
        resource = self.stack.template.resources.get(name.split(".", 1)[0]) or {}
        return resource.get("Type") == "AWS::Lambda::Version"

    def policy(self, logical_id: str, properties: dict[str, Any]) -> str:
        """An AWS::IAM::Policy: the same document put inline on each role it names."""
        props = self.resolver.resolve(properties)
        self._put_on_roles(
            logical_id, f"{SEPARATE_POLICY_PREFIX}{props['PolicyName']}", props["PolicyDocument"], props
        )
        name = str(props["PolicyName"])
        self.resolver.refs[logical_id] = name
        return name

    def managed_policy(self, logical_id: str, properties: dict[str, Any]) -> str:
        """A customer managed policy: created (roles naming its ARN copy it), and put on its `Roles`."""
        props = self.resolver.resolve(properties)
        name = str(props.get("ManagedPolicyName") or physical_name(self.identity, logical_id, limit=128))
        iam = self.cloud.client("iam")
        document = json.dumps(props["PolicyDocument"])
        arn = f"arn:aws:iam::{self.identity.account_id}:policy{props.get('Path', '/')}{name}"
        try:
            arn = iam.create_policy(PolicyName=name, Path=props.get("Path", "/"), PolicyDocument=document)[
                "Policy"
            ]["Arn"]
        except iam.exceptions.EntityAlreadyExistsException:
            for stale in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
                if not stale["IsDefaultVersion"]:
                    iam.delete_policy_version(PolicyArn=arn, VersionId=stale["VersionId"])
            iam.create_policy_version(PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)
        self._put_on_roles(
            logical_id, f"{SEPARATE_POLICY_PREFIX}managed.{name}", props["PolicyDocument"], props
        )
        self.resolver.refs[logical_id] = arn
        return str(arn)

    def _put_on_roles(
        self, logical_id: str, name: str, document: dict[str, Any], props: dict[str, Any]
    ) -> None:
        enforceable = enforceable_policy(document)
        for note in enforceable.notes:
            self.stack.not_emulated.append((logical_id, "AWS::IAM::Policy", note))
        iam = self.cloud.client("iam")
        for role in props.get("Roles") or ():
            iam.put_role_policy(
                RoleName=role, PolicyName=name, PolicyDocument=json.dumps(enforceable.document)
            )
        if props.get("Users") or props.get("Groups"):
            self.stack.not_emulated.append(
                (logical_id, "AWS::IAM::Policy", "Users and Groups are not given it")
            )

    def function(self, logical_id: str, properties: dict[str, Any]) -> str:
        name = str(self.resolver.refs[logical_id])
        props = {key: value for key, value in properties.items() if key != "Environment"}
        props = self.resolver.resolve(props)
        version_id, alias_id, alias_name = self._version_and_alias(logical_id)
        self.stack.functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=name,
            handler=props["Handler"],
            code=self._code(logical_id, props.get("Code", {})),
            timeout=float(props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT_SECONDS)),
            memory_mb=int(props.get("MemorySize", LAMBDA_DEFAULT_MEMORY_MB)),
            runtime=str(props.get("Runtime", "python3.13")),
            environment=(properties.get("Environment") or {}).get("Variables", {}),
            version_logical_id=version_id,
            alias_logical_id=alias_id,
            alias_name=alias_name,
            layers=tuple(str(layer) for layer in props.get("Layers") or ()),
            reserved_concurrency=_optional_int(props.get("ReservedConcurrentExecutions")),
            role=str(props["Role"]) if props.get("Role") else None,
        )
        return name

    def _version_and_alias(self, logical_id: str) -> tuple[str | None, str | None, str | None]:
        version_id = alias_id = alias_name = None
        for other_id, resource in self.stack.template.resources.items():
            function_ref = (resource.get("Properties") or {}).get("FunctionName")
            if function_ref != {"Ref": logical_id}:
                continue
            if resource["Type"] == "AWS::Lambda::Version":
                version_id = other_id
            elif resource["Type"] == "AWS::Lambda::Alias":
                alias_id, alias_name = other_id, resource["Properties"]["Name"]
        return version_id, alias_id, alias_name

    def _code(self, logical_id: str, code: dict[str, Any]) -> Path:
        bucket, key = code.get("S3Bucket"), code.get("S3Key")
        if bucket == LOCAL_CODE_BUCKET and key in self.stack.template.local_code:
            return self.stack.template.local_code[key]
        if bucket and key:
            target = Path(tempfile.mkdtemp(prefix="rehearsal-code-")) / f"{logical_id}.zip"
            self.cloud.client("s3").download_file(bucket, key, str(target))
            return target
        raise UserError(f"{logical_id}: only zip code in S3 or a local CodeUri can run locally (no images)")

    def event_source_mapping(self, logical_id: str, properties: dict[str, Any]) -> str:
        props = self.resolver.resolve(properties)
        arn = str(props.get("EventSourceArn", ""))
        if arn not in self.queue_urls_by_arn:
            if not arn.startswith("arn:aws:sqs:"):
                self.stack.not_emulated.append(
                    (
                        logical_id,
                        "AWS::Lambda::EventSourceMapping",
                        f"only SQS event sources are polled, not {arn}",
                    )
                )
                return arn
            raise UnresolvedReferenceError(arn)
        url = self.queue_urls_by_arn[arn]
        visibility = self.cloud.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["VisibilityTimeout"]
        )
        self.stack.queue_sources.append(
            QueueSource(
                logical_id=logical_id,
                function=str(props["FunctionName"]),
                queue_url=url,
                queue_arn=arn,
                batch_size=int(props.get("BatchSize", SQS_DEFAULT_BATCH_SIZE)),
                batching_window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures"
                in props.get("FunctionResponseTypes", []),
                visibility_timeout=float(visibility["Attributes"]["VisibilityTimeout"]),
                maximum_concurrency=props.get("ScalingConfig", {}).get("MaximumConcurrency"),
            )
        )
        return logical_id

    def rest_api(self, logical_id: str, properties: dict[str, Any]) -> str:
        props = self.resolver.resolve(properties)
        if "Body" not in props:
            self.stack.not_emulated.append(
                (logical_id, "AWS::ApiGateway::RestApi", "only an API defined inline (Body) can be served")
            )
            return str(self.resolver.refs[logical_id])
        stage = "Prod"
        for resource in self.stack.template.resources_of_type("AWS::ApiGateway::Stage").values():
            if resource["Properties"].get("RestApiId") == {"Ref": logical_id}:
                stage = str(self.resolver.resolve(resource["Properties"]["StageName"]))
        body = props["Body"]
        name = str(props.get("Name") or body.get("info", {}).get("title") or logical_id)
        self.stack.rest_apis.append(RestApi(logical_id=logical_id, name=name, stage=stage, body=body))
        return str(self.resolver.refs[logical_id])


def _statements(document: dict[str, Any]) -> list[Any]:
    statements = document.get("Statement") or []
    return list(statements) if isinstance(statements, list) else [statements]


def _filter(item: dict[str, Any]) -> dict[str, Any]:
    rules = ((item.get("Filter") or {}).get("S3Key") or {}).get("Rules")
    return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
