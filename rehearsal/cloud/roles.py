"""IAM roles of a template in the local cloud, written so that moto's enforcement never allows more than AWS.

moto checks a role session's calls against the role's inline and attached policies, but reads only
part of a policy (moto/iam/access_control.py, ADR 0043): it matches `Resource` only where the
service hands it the request's resource (S3 buckets and keys, SQS queues; DynamoDB tables through
`rehearsal.cloud.enforcement`), and passes "*" for every other service, so a statement scoped to an
ARN of another service would never match; it does not evaluate
`Condition` (a conditional Allow would allow unconditionally) nor `NotResource` (it would allow
everything). So each statement is rewritten before it is stored, always towards less permission:

- actions of services the local cloud scopes (S3, SQS, DynamoDB) keep their `Resource`; the other
  actions are checked by action only (their `Resource` becomes "*");
- an Allow with a `Condition` or `NotResource` is dropped; a Deny with one denies unconditionally.

What was rewritten is returned as notes for the run's `not_emulated`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rehearsal.base.aws import LAMBDA_SERVICE_PRINCIPAL
from rehearsal.base.errors import UserError

# Services whose checks name the request's resource (s3: moto's `_authenticate_and_authorize_s3_action`,
# sqs: `SQSResponse._determine_resource`, dynamodb: `rehearsal.cloud.enforcement`); every other
# service is checked against Resource "*".
RESOURCE_SCOPED_SERVICES = frozenset({"s3", "sqs", "dynamodb"})
# Operations moto checks by their own name that AWS authorizes with another action, so a statement
# naming the action gets the operation too: "You cannot set permissions explicitly for
# SendMessageBatch, DeleteMessageBatch, or ChangeMessageVisibilityBatch. Instead, setting permissions
# for SendMessage, DeleteMessage, or ChangeMessageVisibility sets permissions for the corresponding
# batch versions" (SQS, "Amazon SQS batch actions"). (DynamoDB transactions are checked per item:
# `rehearsal.cloud.enforcement`.)
_AUTHORIZED_BY = {
    "sqs:SendMessageBatch": "sqs:sendmessage",
    "sqs:DeleteMessageBatch": "sqs:deletemessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:changemessagevisibility",
}
# Inline names of policies that AWS::IAM::Policy / ManagedPolicy resources put on a role.
SEPARATE_POLICY_PREFIX = "policy."


# What IAM checks on AWS that the local cloud does not, as (what, where, why) for every run (ADR 0043).
IAM_NOT_EMULATED = (
    (
        "IAM resources and conditions",
        "every execution role",
        "the local cloud checks a role's actions, and resource ARNs only for S3, SQS and DynamoDB; "
        "Condition, NotResource and permissions boundaries are not evaluated (such an Allow is dropped, "
        "such a Deny made unconditional)",
    ),
    (
        "IAM resource policies",
        "queue, bucket and topic policies, Lambda permissions",
        "not evaluated: a call only a resource policy denies passes here; one only it allows fails",
    ),
    (
        "IAM outside the local cloud",
        "PreTraffic hooks, AWS_IAM API routes",
        "lambda:InvokeFunction and codedeploy:PutLifecycleEventHookExecutionStatus reach the rehearsal's "
        "control plane, execute-api:Invoke its gateway; neither checks the caller's policy",
    ),
    (
        "IAM on presigned S3 requests",
        "S3",
        "a presigned URL or POST is not checked against its signer's permissions (moto cannot check a "
        "request without an Authorization header)",
    ),
    (
        "IAM of event source pollers",
        "SQS event sources",
        "queues are polled with the function's role, but the visibility changes that compress time are "
        "made as the rehearsal's administrator; S3 notifications reach functions through internal queues "
        "polled as the administrator",
    ),
    (
        "IAM of test builds",
        "test and bake builds",
        "builds call the local cloud as its administrator, not as the stack's TestRole: moto cannot "
        "evaluate TestRole's trust (an account-root principal with an aws:PrincipalArn condition)",
    ),
)


@dataclass(frozen=True, kw_only=True)
class EnforceablePolicy:
    """A policy document as stored in the local cloud, and what was changed to store it."""

    document: dict[str, Any]
    notes: tuple[str, ...]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _service(action: str) -> str:
    return action.split(":", 1)[0].lower() if ":" in action else "*"


def _rewrite_statement(statement: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The statement(s) moto evaluates no more permissively than AWS, and what changed."""
    allow = statement.get("Effect") == "Allow"
    label = statement.get("Sid") or ",".join(_as_list(statement.get("Action") or statement.get("NotAction")))
    if "Condition" in statement or "NotResource" in statement:
        element = "Condition" if "Condition" in statement else "NotResource"
        if allow:
            return [], [f"Allow {label}: dropped ({element} is not evaluated by the local cloud)"]
        kept = {key: value for key, value in statement.items() if key not in ("Condition", "NotResource")}
        return [{**kept, "Resource": "*"}], [f"Deny {label}: applied without its {element}"]
    resources = _as_list(statement.get("Resource"))
    if resources == ["*"] or not resources:
        return [statement], []
    if "NotAction" in statement:
        if allow:
            return [], [f"Allow NotAction {label}: dropped (scoped NotAction is not evaluated here)"]
        return [{**statement, "Resource": "*"}], [f"Deny NotAction {label}: applied to every resource"]
    actions = _as_list(statement.get("Action"))
    scoped = [action for action in actions if _service(action) in RESOURCE_SCOPED_SERVICES]
    unscoped = [action for action in actions if action not in scoped]
    rewritten = [{**statement, "Action": scoped}] if scoped else []
    notes: list[str] = []
    if unscoped:
        rewritten.append({**statement, "Action": unscoped, "Resource": "*"})
        notes.append(f"{label}: {', '.join(unscoped)} checked by action only, on any resource")
    return rewritten, notes


def _with_operations_aws_maps(statement: dict[str, Any]) -> dict[str, Any]:
    """The statement with each operation moto names apart that its actions authorize on AWS."""
    if "Action" not in statement:
        return statement
    actions = _as_list(statement["Action"])
    named = {action.lower() for action in actions}
    added = [operation for operation, action in _AUTHORIZED_BY.items() if action in named]
    return {**statement, "Action": list(dict.fromkeys([*actions, *added]))} if added else statement


def enforceable_policy(document: dict[str, Any]) -> EnforceablePolicy:
    """`document` rewritten statement by statement (see the module docstring)."""
    statements: list[dict[str, Any]] = []
    notes: list[str] = []
    for statement in _as_list(document.get("Statement")):
        kept, changed = _rewrite_statement(_with_operations_aws_maps(statement))
        statements += kept
        notes += changed
    if not statements:  # moto refuses an empty statement list; this one allows nothing
        statements = [{"Effect": "Deny", "Action": "*", "Resource": "*"}]
    return EnforceablePolicy(
        document={"Version": document.get("Version", "2012-10-17"), "Statement": statements},
        notes=tuple(notes),
    )


def trusts_lambda(trust: dict[str, Any]) -> bool:
    """True when the trust policy lets Lambda assume the role (an unconditional Allow of sts:AssumeRole)."""
    for statement in _as_list(trust.get("Statement")):
        principal = statement.get("Principal")
        services = _as_list(principal.get("Service")) if isinstance(principal, dict) else []
        actions = _as_list(statement.get("Action"))
        if (
            statement.get("Effect") == "Allow"
            and LAMBDA_SERVICE_PRINCIPAL in services
            and "Condition" not in statement
            and any(action in ("sts:AssumeRole", "sts:*", "*") for action in actions)
        ):
            return True
    return False


def local_trust_policy(trust: dict[str, Any], *, lambda_stand_in: str) -> dict[str, Any]:
    """The trust policy stored in moto: offline the runtime (`lambda_stand_in`) plays the Lambda service.

    moto compares only AWS principals (a Service principal breaks its check), so a role Lambda may
    assume trusts the stand-in; any other role trusts nobody here (nothing offline assumes it).
    """
    if trusts_lambda(trust):
        principal: dict[str, Any] = {"AWS": lambda_stand_in}
        return {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}],
        }
    # Not a Deny: moto permits any trust statement whose principal matches, whatever its Effect; and
    # it matches a string principal by substring, so this one must not contain the stand-in's ARN.
    nobody: dict[str, Any] = {"AWS": f"{lambda_stand_in.rsplit('/', 1)[0]}/no-one-assumes-this-role-offline"}
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": nobody, "Action": "sts:AssumeRole"}],
    }


def put_role(
    iam: Any,
    *,
    name: str,
    path: str,
    trust: dict[str, Any],
    inline: dict[str, dict[str, Any]],
    managed: Iterable[str],
    lambda_stand_in: str,
) -> tuple[str, tuple[str, ...]]:
    """Create or update role `name` with exactly these policies; return (its ARN, notes).

    A managed policy's document (an AWS managed one as moto ships it) is stored as an inline copy
    named `managed.<name>`, rewritten like any other: attached as is, its conditions would go
    unevaluated. An update replaces the trust policy and every policy, so that a permission a new
    template removes is gone before its functions run again, as CloudFormation's update does.
    """
    trust_document = json.dumps(local_trust_policy(trust, lambda_stand_in=lambda_stand_in))
    try:
        arn = iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=trust_document)["Role"][
            "Arn"
        ]
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust_document)
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    documents = {
        **inline,
        **{_copy_name(policy_arn): _managed_document(iam, name, policy_arn) for policy_arn in managed},
    }
    notes: list[str] = []
    for stale in set(iam.list_role_policies(RoleName=name)["PolicyNames"]) - set(documents):
        if stale.startswith(SEPARATE_POLICY_PREFIX):
            continue  # an AWS::IAM::Policy or ManagedPolicy resource's own, put after the role
        iam.delete_role_policy(RoleName=name, PolicyName=stale)
    for policy_name, document in documents.items():
        enforceable = enforceable_policy(document)
        notes += [f"{policy_name}: {note}" for note in enforceable.notes]
        iam.put_role_policy(
            RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(enforceable.document)
        )
    return str(arn), tuple(notes)


def _copy_name(policy_arn: str) -> str:
    return "managed." + policy_arn.rsplit("/", 1)[-1]


# AWS managed policies (arn:aws:iam::aws:policy/...) are the same in every local cloud, moto shipping
# them with its release, and no template can change one: each is read from a cloud once a process.
# Every provisioning of a stack writes all its roles again, two IAM requests a role and managed policy.
_AWS_MANAGED_PREFIX = "arn:aws:iam::aws:policy/"
_aws_managed_documents: dict[str, str] = {}


def _managed_document(iam: Any, role: str, policy_arn: str) -> dict[str, Any]:
    document = _aws_managed_documents.get(policy_arn)
    if document is None:
        try:
            policy = iam.get_policy(PolicyArn=policy_arn)["Policy"]
            version = iam.get_policy_version(PolicyArn=policy_arn, VersionId=policy["DefaultVersionId"])
        except iam.exceptions.NoSuchEntityException as error:
            raise UserError(
                f"role {role}: managed policy {policy_arn} is not known to the local cloud (moto ships AWS "
                "managed policies only as of its release): inline its statements or drop the reference"
            ) from error
        stored = version["PolicyVersion"]["Document"]
        document = stored if isinstance(stored, str) else json.dumps(stored)
        if policy_arn.startswith(_AWS_MANAGED_PREFIX):
            _aws_managed_documents[policy_arn] = document
    return dict(json.loads(document))
