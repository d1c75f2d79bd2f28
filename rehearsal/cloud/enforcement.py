"""IAM enforcement inside the local cloud's server child: the administrator, and where moto is changed.

Runs only in the moto server child (`rehearsal.cloud.server.serve`), before it answers any request
(ADR 0043). moto's checks are kept; they are changed in three places, each named in the run's
`not_emulated` or narrowing what moto would allow:
- the administrator IAM user gets the rehearsal's documented fixed key (moto would draw a random one);
- DynamoDB requests are checked against each table they touch, and a transaction's items against
  the item actions AWS checks (moto checks the operation's own name against Resource "*");
- S3 requests without an Authorization header (presigned URLs and POSTs) are let through unchecked,
  as without enforcement (moto's check fails on them with an HTTP 500).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from rehearsal.base.aws import ACCESS_KEY_ID, ADMINISTRATOR_USER_NAME, REGION, SECRET_ACCESS_KEY

ADMINISTRATOR_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "RehearsalAdministrator", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}
# "Permissions for Put, Update, Delete, and Get actions are governed by the permissions used for the
# underlying PutItem, UpdateItem, DeleteItem, and GetItem operations. For the ConditionCheck action,
# you can use the dynamodb:ConditionCheckItem permission" (DynamoDB, "Using IAM with DynamoDB
# transactions").
_TRANSACTION_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
_INDEXED = ("Query", "Scan")


def install(account_id: str) -> None:  # pragma: no cover - runs in the server child
    """Everything the child does before it serves: administrator, and the three changes above."""
    create_administrator(account_id)
    _keep_administrator_across_resets(account_id)
    _check_dynamodb_per_table()
    _let_unsigned_s3_requests_through()


def create_administrator(account_id: str) -> None:  # pragma: no cover - runs in the server child
    """The administrator IAM user with the rehearsal's fixed key, in `account_id`.

    Created in moto's IAM model directly, before the server answers: no request ever runs
    unchecked, and its key is the documented local one.
    """
    from moto.iam.models import iam_backends  # noqa: PLC0415 - only the server child imports moto

    backend = iam_backends[account_id]["aws"]
    if ADMINISTRATOR_USER_NAME in backend.users:
        return
    backend.create_user(REGION, ADMINISTRATOR_USER_NAME)
    backend.put_user_policy(ADMINISTRATOR_USER_NAME, "administrator", json.dumps(ADMINISTRATOR_POLICY))
    key = backend.create_access_key(ADMINISTRATOR_USER_NAME)
    del backend.access_keys[key.physical_resource_id]
    key.access_key_id, key.secret_access_key = ACCESS_KEY_ID, SECRET_ACCESS_KEY
    backend.access_keys[key.physical_resource_id] = key  # moto finds a key's account here


def _keep_administrator_across_resets(account_id: str) -> None:  # pragma: no cover - server child
    """`POST /moto-api/reset` empties every backend; the administrator is created again after it."""
    from moto.moto_api._internal.models import moto_api_backend  # noqa: PLC0415

    reset = moto_api_backend.reset

    def reset_and_recreate() -> None:
        reset()
        create_administrator(account_id)

    moto_api_backend.reset = reset_and_recreate  # type: ignore[method-assign]


def dynamodb_checks(action: str, body: dict[str, Any], table_arn_prefix: str) -> Iterator[tuple[str, str]]:
    """(IAM action, resource ARN) pairs AWS checks for one DynamoDB request, as far as its body says.

    A transaction checks each item's own action on its table; a batch its operation on each table;
    a query or scan of an index the index's ARN; anything naming no table, "*".
    """
    if action in ("TransactWriteItems", "TransactGetItems"):
        for item in body.get("TransactItems") or ():
            kind, spec = next(iter(item.items()))
            yield _TRANSACTION_ITEM_ACTIONS[kind], f"{table_arn_prefix}{spec['TableName']}"
    elif action in ("BatchWriteItem", "BatchGetItem"):
        for table in body.get("RequestItems") or {}:
            yield action, f"{table_arn_prefix}{table}"
    elif "TableName" in body:
        index = body.get("IndexName") if action in _INDEXED else None
        yield action, f"{table_arn_prefix}{body['TableName']}" + (f"/index/{index}" if index else "")
    else:
        yield action, "*"


def _check_dynamodb_per_table() -> None:  # pragma: no cover - runs in the server child
    """DynamoDB requests checked like `_authenticate_and_authorize_action`, once per (action, table)."""
    from moto import settings  # noqa: PLC0415
    from moto.core.authorization import ActionAuthenticatorMixin  # noqa: PLC0415
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415
    from moto.iam.access_control import IAMRequest  # noqa: PLC0415

    def authorize(self: Any, resource: str = "*") -> None:
        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            ActionAuthenticatorMixin.request_count += 1
            return
        parsed = urlparse(self.uri)
        request = IAMRequest(
            account_id=self.current_account,
            method=self.method,
            path=parsed.path + (f"?{parsed.query}" if parsed.query else ""),
            data=self.data,
            body=self.raw_body,
            headers=self.headers,
            action=self._get_action(),
        )
        request.check_signature()
        prefix = f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/"
        body = self.body if isinstance(self.body, dict) else {}
        for action, arn in dynamodb_checks(self._get_action(), body, prefix):
            request._action = f"dynamodb:{action}"
            request.check_action_permitted(arn)

    DynamoHandler._authenticate_and_authorize_normal_action = authorize  # type: ignore[method-assign]


def _let_unsigned_s3_requests_through() -> None:  # pragma: no cover - runs in the server child
    """Presigned S3 URLs and POSTs carry no Authorization header, which moto's check requires (it
    fails with a KeyError, an HTTP 500): they are let through unchecked, as without enforcement."""
    from moto.core.authorization import ActionAuthenticatorMixin  # noqa: PLC0415

    check = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action

    def check_signed_only(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        if "Authorization" not in self.headers:
            return
        check(self, bucket_name=bucket_name, key_name=key_name)

    ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = check_signed_only  # type: ignore[method-assign]
