"""Execution role sessions: the credentials Lambda gives a function's process, from sts:AssumeRole.

"Lambda obtains temporary credentials by assuming your role" and sets AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, "the access keys obtained from the function's execution
role" (ADR 0043). Offline the runtime assumes the role in the local cloud as the Lambda service's
stand-in (the administrator the role's local trust policy names), once per role and function,
renewed before the session ends, so a function start costs no STS call in the common case.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from rehearsal.base.errors import UserError

CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_SESSION_SECONDS = 3600
_RENEW_BEFORE_SECONDS = 600


@dataclass(frozen=True, kw_only=True)
class RoleSession:
    """One assumed-role session: what a worker's environment carries, and when it ends."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    ends_at: float  # time.monotonic()

    def environ(self) -> dict[str, str]:
        return dict(
            zip(
                CREDENTIAL_VARIABLES,
                (self.access_key_id, self.secret_access_key, self.session_token),
                strict=True,
            )
        )


class ExecutionRoles:
    """Assumes execution roles in one local cloud and keeps each session until it is near its end."""

    def __init__(self, sts: Any) -> None:
        self._sts = sts
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str], RoleSession] = {}
        self._secrets: dict[str, str] = {}

    def session(self, role_arn: str, function_name: str) -> RoleSession:
        """The role's session for `function_name` (Lambda names the session after the function)."""
        key = (role_arn, function_name)
        with self._lock:
            cached = self._sessions.get(key)
            if cached is not None and cached.ends_at - time.monotonic() > _RENEW_BEFORE_SECONDS:
                return cached
        try:
            answer = self._sts.assume_role(
                RoleArn=role_arn, RoleSessionName=function_name[:64], DurationSeconds=_SESSION_SECONDS
            )["Credentials"]
        except self._sts.exceptions.ClientError as error:
            raise UserError(
                f"function {function_name}: its execution role {role_arn} cannot be assumed in the local "
                f"cloud ({error.response['Error'].get('Code', 'error')}): the role must be in the template "
                "and trust lambda.amazonaws.com"
            ) from error
        session = RoleSession(
            access_key_id=answer["AccessKeyId"],
            secret_access_key=answer["SecretAccessKey"],
            session_token=answer["SessionToken"],
            ends_at=time.monotonic() + _SESSION_SECONDS,
        )
        with self._lock:
            self._sessions[key] = session
            self._secrets[session.access_key_id] = session.secret_access_key
        return session

    def secret_for(self, access_key_id: str) -> str | None:
        """The secret of a session this runtime handed out (to verify a function's SigV4 signature)."""
        with self._lock:
            return self._secrets.get(access_key_id)


class PollerSqs:
    """The SQS client an event source mapping polls with: the function's role session, as on AWS.

    "When you use an event source mapping to invoke your function, Lambda uses the execution role
    to read event data" (ADR 0043). Only the visibility changes the rehearsal makes to compress time
    (Lambda leaves a failed message to its visibility timeout instead) go as the administrator.
    """

    _REHEARSAL_OWN = frozenset({"change_message_visibility", "change_message_visibility_batch"})

    def __init__(self, *, role_client: Any, own_client: Any) -> None:
        self._role = role_client
        self._own = own_client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._own if name in self._REHEARSAL_OWN else self._role, name)
