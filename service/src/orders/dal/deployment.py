"""Lambda and CodeDeploy for the PreTraffic hook."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from orders.dal import clients
from orders.logic.ports import InvocationResult

if TYPE_CHECKING:
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_lambda import LambdaClient


class LambdaInvoker:
    """FunctionInvoker on Lambda: a synchronous invoke of a qualified (version) ARN."""

    def __init__(self, *, client: LambdaClient | None = None) -> None:
        # Made here, in the caller's thread: the hook invokes from several threads, and a boto3
        # client, unlike the session that makes it, may be shared between them.
        self._client = client or clients.lambda_()

    def invoke(self, *, function_arn: str, event: dict[str, Any]) -> InvocationResult:
        """Invoke and decode the JSON payload (raw text when it is not JSON)."""
        response = self._client.invoke(
            FunctionName=function_arn, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
        raw = response["Payload"].read().decode()
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = raw
        return InvocationResult(function_error=response.get("FunctionError"), payload=payload)


class CodeDeployHookReporter:
    """HookReporter on CodeDeploy."""

    def __init__(self, *, client: CodeDeployClient | None = None) -> None:
        self._client = client

    def report(self, *, deployment_id: str, execution_id: str, succeeded: bool) -> None:
        """put_lifecycle_event_hook_execution_status with Succeeded or Failed."""
        client = self._client or clients.codedeploy()
        client.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id,
            lifecycleEventHookExecutionId=execution_id,
            status="Succeeded" if succeeded else "Failed",
        )
