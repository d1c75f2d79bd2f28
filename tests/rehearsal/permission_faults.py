"""Removed IAM permissions, as text edits of service/template.yaml, for deployer and release tests.

Functions call the local cloud with their execution role's session and the local cloud enforces the
role's policies (docs/decisions/0043-functions-call-as-their-execution-role.md), so a release whose
template takes a permission away from a function that uses it fails offline where it fails on AWS.

A release-level test takes one of these and applies it to the template of the commit it releases:

    template = clone / "service" / "template.yaml"
    template.write_text(WORKER_CANNOT_UPDATE_ORDERS.apply(template.read_text()))

`stopped_by` says where AWS (and the rehearsal) stops such a release in staging.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RemovedPermission:
    """One policy of one function replaced by a narrower one; `apply` fails if the template changed."""

    function: str  # the logical id whose role loses the permission
    permission: str  # the action its code still calls
    before: str  # template text, unique in the template
    after: str
    stopped_by: str  # "PreTraffic hook" or "canary"

    def apply(self, template_text: str) -> str:
        count = template_text.count(self.before)
        if count != 1:
            raise AssertionError(
                f"{self.function}: expected the policy text once in service/template.yaml, found it {count} "
                "times; update tests/rehearsal/permission_faults.py to the template"
            )
        return template_text.replace(self.before, self.after)


# GET /orders/{id} reads the table: without dynamodb:GetItem the hook's "unknown order is 404" check
# gets a 500, so the new version never receives traffic.
STATUS_CANNOT_READ_ORDERS = RemovedPermission(
    function="GetOrderFunction",
    permission="dynamodb:GetItem",
    before=(
        "      Policies:\n"
        "        - DynamoDBReadPolicy:\n"
        "            TableName: !Ref OrdersTable\n"
        "      Events:\n"
        "        GetOrder:\n"
    ),
    after="      Events:\n        GetOrder:\n",
    stopped_by="PreTraffic hook",
)

# The worker decides each order with dynamodb:UpdateItem: with read-only access every record fails,
# which its per-version record-failure alarm sees during the staging canary (the hook's empty batch passes).
WORKER_CANNOT_UPDATE_ORDERS = RemovedPermission(
    function="ProcessOrdersFunction",
    permission="dynamodb:UpdateItem",
    before=(
        "        - DynamoDBCrudPolicy:\n"
        "            TableName: !Ref OrdersTable\n"
        "        - DynamoDBCrudPolicy:\n"
        "            TableName: !Ref IdempotencyTable\n"
        "      Events:\n"
        "        Orders:\n"
    ),
    after=(
        "        - DynamoDBReadPolicy:\n"
        "            TableName: !Ref OrdersTable\n"
        "        - DynamoDBCrudPolicy:\n"
        "            TableName: !Ref IdempotencyTable\n"
        "      Events:\n"
        "        Orders:\n"
    ),
    stopped_by="canary",
)
