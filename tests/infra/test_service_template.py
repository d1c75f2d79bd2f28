"""The service's SAM template, transformed by aws-sam-translator (the transform AWS runs) and asserted.

No network: the managed-policy lookup SAM would make against IAM is answered by a stub.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode
from samtranslator.translator.transform import transform

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "service" / "template.yaml"

RELEASED_FUNCTIONS = (
    "SubmitOrderFunction",
    "GetOrderFunction",
    "PresignAttachmentFunction",
    "ProcessOrdersFunction",
    "RecordAttachmentFunction",
)
API_FUNCTIONS = ("SubmitOrderFunction", "GetOrderFunction", "PresignAttachmentFunction")
HOOK = "PreTrafficHookFunction"
HANDLERS = {
    "SubmitOrderFunction": "orders.handlers.submit.handler",
    "GetOrderFunction": "orders.handlers.status.handler",
    "PresignAttachmentFunction": "orders.handlers.presign.handler",
    "ProcessOrdersFunction": "orders.handlers.worker.handler",
    "RecordAttachmentFunction": "orders.handlers.attach.handler",
    "SweepUnsentOrdersFunction": "orders.handlers.sweeper.handler",
    HOOK: "orders.handlers.pre_traffic.handler",
}
ENV_VARS_THE_CODE_READS = {
    "ORDERS_TABLE_NAME",
    "IDEMPOTENCY_TABLE_NAME",
    "ORDERS_QUEUE_URL",
    "ATTACHMENTS_BUCKET_NAME",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "MAX_ORDER_TOTAL",
}
OFFLINE_AWS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "SAM_CLI_TELEMETRY": "0",
}


class OfflineManagedPolicyLoader:
    """Answers SAM's managed-policy name lookup from a fixed map instead of IAM's ListPolicies."""

    def load(self) -> dict[str, str]:
        names = ("AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess", "AWSCodeDeployRoleForLambda")
        return {name: f"arn:aws:iam::aws:policy/{name}" for name in names}


def _transform(parameters: dict[str, str]) -> dict[str, Any]:
    template, matches = decode(str(TEMPLATE))
    assert template is not None, matches
    # cfn-lint's nodes are dict/str subclasses; plain JSON types are what the transform expects.
    sam = json.loads(json.dumps(template))
    # What `sam package` does to the local CodeUri before CloudFormation runs the transform.
    sam["Globals"]["Function"]["CodeUri"] = "s3://artifacts/orders.zip"
    with pytest.MonkeyPatch.context() as env:
        for key, value in OFFLINE_AWS_ENV.items():
            env.setenv(key, value)
        return transform(sam, parameters, OfflineManagedPolicyLoader())


@pytest.fixture(scope="session")
def resources() -> dict[str, Any]:
    """The transformed template's resources, for a staging deployment with the default canary."""
    transformed = _transform({"Environment": "staging", "DeploymentType": "Canary10Percent5Minutes"})
    return dict(transformed["Resources"])


@pytest.fixture(scope="session")
def source() -> dict[str, Any]:
    """The template as written (before the transform)."""
    template, _ = decode(str(TEMPLATE))
    return dict(json.loads(json.dumps(template)))


def _of_type(resources: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in resources.items() if res["Type"] == resource_type}


def _version_id(resources: dict[str, Any], function: str) -> str:
    versions = [
        name
        for name, res in _of_type(resources, "AWS::Lambda::Version").items()
        if res["Properties"]["FunctionName"] == {"Ref": function}
    ]
    assert len(versions) == 1, versions
    return versions[0]


def _alias(resources: dict[str, Any], function: str) -> dict[str, Any]:
    aliases = [
        res
        for res in _of_type(resources, "AWS::Lambda::Alias").values()
        if res["Properties"]["FunctionName"] == {"Ref": function}
    ]
    assert len(aliases) == 1, f"{function} has {len(aliases)} aliases"
    return aliases[0]


def _statements(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy statement in roles, queue policies and bucket policies."""
    for name, res in resources.items():
        props = res.get("Properties", {})
        documents = [policy["PolicyDocument"] for policy in props.get("Policies", [])]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            statements = document["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                yield name, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _alarm_names(group: dict[str, Any]) -> list[str]:
    return [alarm["Name"]["Ref"] for alarm in group["Properties"]["AlarmConfiguration"]["Alarms"]]


# ---------------------------------------------------------------- contract


def test_functions_use_the_handlers_of_the_contract(resources: dict[str, Any]) -> None:
    handlers = {name: resources[name]["Properties"]["Handler"] for name in HANDLERS}
    assert handlers == HANDLERS


def test_every_function_gets_the_environment_the_code_reads(resources: dict[str, Any]) -> None:
    for name in HANDLERS:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables.keys() >= ENV_VARS_THE_CODE_READS, name


def test_parameters_are_the_environment_and_the_canary_type(source: dict[str, Any]) -> None:
    parameters = source["Parameters"]
    assert parameters["Environment"]["AllowedValues"] == ["local", "staging", "production"]
    assert parameters["DeploymentType"]["Default"] == "Canary10Percent5Minutes"
    assert "AllAtOnce" in parameters["DeploymentType"]["AllowedValues"]
    assert len(parameters["DeploymentType"]["AllowedValues"]) == 9


def test_outputs_are_the_ones_the_pipeline_and_tests_read(source: dict[str, Any]) -> None:
    assert set(source["Outputs"]) == {
        "ApiUrl",
        "OrdersQueueUrl",
        "OrdersDeadLetterQueueUrl",
        "OrdersTableName",
        "AttachmentsBucketName",
        "TestRoleArn",
        "OperationsTopicArn",
    }
    assert re.fullmatch(
        r"https://\$\{Api\}\.execute-api\.\$\{AWS::Region\}\.\$\{AWS::URLSuffix\}/\w+",
        source["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"],
    )


# ---------------------------------------------------------------- runtime


def test_functions_run_python313_on_arm64_with_tracing(resources: dict[str, Any]) -> None:
    for name in HANDLERS:
        props = resources[name]["Properties"]
        assert (props["Runtime"], props["Architectures"]) == ("python3.13", ["arm64"]), name
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        assert props["MemorySize"] > 0 and props["Timeout"] > 0, name


def test_powertools_layer_is_the_release_pinned_in_requirements(resources: dict[str, Any]) -> None:
    pinned = re.search(
        r"^aws[-_]lambda[-_]powertools==(\S+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE
    )
    assert pinned, "requirements.txt pins no aws-lambda-powertools"
    layer = f"{{{{resolve:ssm:/aws/service/powertools/python/arm64/python3.13/{pinned.group(1)}}}}}"
    for name in HANDLERS:
        assert resources[name]["Properties"]["Layers"] == [layer], name


def test_every_function_logs_json_to_its_own_log_group_with_retention(resources: dict[str, Any]) -> None:
    log_groups = []
    for name in HANDLERS:
        logging = resources[name]["Properties"]["LoggingConfig"]
        assert logging["LogFormat"] == "JSON", name
        group = logging["LogGroup"]["Ref"]
        assert resources[group]["Type"] == "AWS::Logs::LogGroup", name
        assert resources[group]["Properties"]["RetentionInDays"], name
        log_groups.append(group)
    assert len(set(log_groups)) == len(HANDLERS)


# ---------------------------------------------------------------- safe deployments


@pytest.mark.parametrize("function", RELEASED_FUNCTIONS)
def test_released_function_is_served_by_a_live_alias_that_codedeploy_shifts(
    resources: dict[str, Any], function: str
) -> None:
    alias = _alias(resources, function)
    assert alias["Properties"]["Name"] == "live"
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["DeploymentGroupName"] == {"Ref": f"{function}DeploymentGroup"}
    assert update["BeforeAllowTrafficHook"] == {"Ref": HOOK}


@pytest.mark.parametrize("function", RELEASED_FUNCTIONS)
def test_released_function_deployment_rolls_back_on_alarms(resources: dict[str, Any], function: str) -> None:
    group = resources[f"{function}DeploymentGroup"]["Properties"]
    assert group["AlarmConfiguration"]["Enabled"] is True
    assert 2 <= len(group["AlarmConfiguration"]["Alarms"]) <= 10
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]


def test_canary_type_comes_from_the_deployment_type_parameter() -> None:
    transformed = _transform({"Environment": "production", "DeploymentType": "Linear10PercentEvery1Minute"})
    for function in RELEASED_FUNCTIONS:
        config = transformed["Resources"][f"{function}DeploymentGroup"]["Properties"]["DeploymentConfigName"]
        assert config["Fn::Sub"][1] == {"ConfigName": "Linear10PercentEvery1Minute"}, function


@pytest.mark.parametrize("function", RELEASED_FUNCTIONS)
def test_function_alarms_watch_only_the_new_version(resources: dict[str, Any], function: str) -> None:
    lambda_alarms = [
        resources[name]["Properties"]
        for name in _alarm_names(resources[f"{function}DeploymentGroup"])
        if resources[name]["Properties"]["Namespace"] == "AWS/Lambda"
    ]
    # API functions also judge the new version's p99 Duration (a slow release rolls back in its canary).
    assert {"Errors", "Throttles"} <= {alarm["MetricName"] for alarm in lambda_alarms}
    assert {alarm["MetricName"] for alarm in lambda_alarms} <= {"Errors", "Throttles", "Duration"}
    for alarm in lambda_alarms:
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dimensions == {
            "FunctionName": {"Ref": function},
            "Resource": {"Fn::Sub": f"${{{function}}}:live"},
            "ExecutedVersion": {"Fn::GetAtt": [_version_id(resources, function), "Version"]},
        }
        assert alarm["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("function", API_FUNCTIONS)
def test_api_deployment_rolls_back_on_p99_latency_of_the_new_version(
    resources: dict[str, Any], function: str
) -> None:
    durations = [
        resources[name]["Properties"]
        for name in _alarm_names(resources[f"{function}DeploymentGroup"])
        if resources[name]["Properties"]["MetricName"] == "Duration"
    ]
    assert len(durations) == 1
    assert (durations[0]["ExtendedStatistic"], durations[0]["Threshold"]) == ("p99", 5000)
    assert {d["Name"] for d in durations[0]["Dimensions"]} == {"FunctionName", "Resource", "ExecutedVersion"}


@pytest.mark.parametrize("function", RELEASED_FUNCTIONS)
def test_no_deployment_alarm_watches_the_whole_api_stage(resources: dict[str, Any], function: str) -> None:
    """One 5xx of the old version, or one crafted request, must not roll back a good release."""
    namespaces = {
        resources[name]["Properties"]["Namespace"]
        for name in _alarm_names(resources[f"{function}DeploymentGroup"])
    }
    assert "AWS/ApiGateway" not in namespaces


def test_worker_deployment_rolls_back_on_record_failures_of_the_new_version(
    resources: dict[str, Any],
) -> None:
    group = resources["ProcessOrdersFunctionDeploymentGroup"]
    assert "ProcessOrdersRecordFailuresAlarm" in _alarm_names(group)
    alarm = resources["ProcessOrdersRecordFailuresAlarm"]["Properties"]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dimensions == {
        "service": {"Ref": "ServiceName"},
        "FunctionName": {"Ref": "ProcessOrdersFunction"},
        "ExecutedVersion": {"Fn::GetAtt": [_version_id(resources, "ProcessOrdersFunction"), "Version"]},
    }
    assert (alarm["Namespace"], alarm["MetricName"]) == ("OrderService", "RecordFailures")
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "Sum",
        "GreaterThanThreshold",
        0,
    )


def test_record_failure_metric_is_written_where_the_alarm_reads_it(resources: dict[str, Any]) -> None:
    """The code's namespace, service and dimension names are the alarm's (EMF written by Powertools)."""
    from orders import observability  # noqa: PLC0415 - service code, imported only by this test

    environment = resources["ProcessOrdersFunction"]["Properties"]["Environment"]["Variables"]
    alarm = resources["ProcessOrdersRecordFailuresAlarm"]["Properties"]
    assert alarm["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert {"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]} in alarm["Dimensions"]
    assert alarm["MetricName"] == observability.RECORD_FAILURES


@pytest.mark.parametrize(
    "alarm",
    [
        "Api5xxAlarm",
        "ApiLatencyAlarm",
        "OrdersDeadLetterQueueDepthAlarm",
        "AttachmentsDeadLetterQueueDepthAlarm",
    ],
)
def test_stage_wide_alarms_page_operations(resources: dict[str, Any], alarm: str) -> None:
    assert resources[alarm]["Properties"]["AlarmActions"] == [{"Ref": "OperationsTopic"}]
    assert resources["OperationsTopic"]["Type"] == "AWS::SNS::Topic"


def test_pre_traffic_hook_is_not_itself_shifted_by_codedeploy(resources: dict[str, Any]) -> None:
    assert f"{HOOK}DeploymentGroup" not in resources
    assert not [
        alias
        for alias in _of_type(resources, "AWS::Lambda::Alias").values()
        if alias["Properties"]["FunctionName"] == {"Ref": HOOK}
    ]


def test_pre_traffic_hook_is_named_so_codedeploy_may_invoke_it(resources: dict[str, Any]) -> None:
    name = resources[HOOK]["Properties"]["FunctionName"]["Fn::Sub"]
    assert name.startswith("CodeDeployHook_")


def test_pre_traffic_hook_is_told_the_new_version_of_every_function(resources: dict[str, Any]) -> None:
    versions = resources[HOOK]["Properties"]["Environment"]["Variables"]["VERSIONS_UNDER_TEST"]["Fn::Sub"]
    pairs = dict(pair.split("=", 1) for pair in versions.split(","))
    assert pairs == {function: f"${{{_version_id(resources, function)}}}" for function in RELEASED_FUNCTIONS}


def test_pre_traffic_hook_may_invoke_only_the_versions_under_test(resources: dict[str, Any]) -> None:
    invoke = [
        statement
        for role, statement in _statements(resources)
        if role == f"{HOOK}Role" and statement["Action"] == "lambda:InvokeFunction"
    ]
    assert len(invoke) == 1
    assert invoke[0]["Resource"] == [{"Ref": _version_id(resources, fn)} for fn in RELEASED_FUNCTIONS]


def test_pre_traffic_hook_may_report_its_result_to_codedeploy(resources: dict[str, Any]) -> None:
    actions = [statement["Action"] for role, statement in _statements(resources) if role == f"{HOOK}Role"]
    assert "codedeploy:PutLifecycleEventHookExecutionStatus" in actions


# ---------------------------------------------------------------- worker and queues


def test_worker_reports_partial_batch_failures(resources: dict[str, Any]) -> None:
    (props,) = [
        res["Properties"]
        for res in _of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if res["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["OrdersQueue", "Arn"]}
    ]
    assert props["FunctionName"] == {"Ref": "ProcessOrdersFunctionAliaslive"}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] > 1 and "MaximumBatchingWindowInSeconds" in props


def test_orders_move_to_the_dead_letter_queue_after_five_receives(resources: dict[str, Any]) -> None:
    redrive = resources["OrdersQueue"]["Properties"]["RedrivePolicy"]
    assert redrive == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["OrdersDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }


def test_dead_letter_queue_keeps_messages_fourteen_days(resources: dict[str, Any]) -> None:
    assert resources["OrdersDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_queue_visibility_timeout_is_at_least_six_worker_timeouts(resources: dict[str, Any]) -> None:
    worker_timeout = resources["ProcessOrdersFunction"]["Properties"]["Timeout"]
    assert resources["OrdersQueue"]["Properties"]["VisibilityTimeout"] >= 6 * worker_timeout


def test_a_message_in_the_dead_letter_queue_raises_an_alarm(resources: dict[str, Any]) -> None:
    alarms = [
        alarm["Properties"]
        for alarm in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["Namespace"] == "AWS/SQS"
    ]
    assert len(alarms) == 2
    alarm = next(alarm for alarm in alarms if "OrdersDeadLetterQueue" in json.dumps(alarm["Dimensions"]))
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["OrdersDeadLetterQueue", "QueueName"]}}
    ]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": "OperationsTopic"}]


# ---------------------------------------------------------------- data, encryption, transport


def test_orders_table_is_on_demand_encrypted_and_point_in_time_recoverable(resources: dict[str, Any]) -> None:
    props = resources["OrdersTable"]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "orderId", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_idempotency_table_is_encrypted_and_expires_records(resources: dict[str, Any]) -> None:
    props = resources["IdempotencyTable"]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}


def test_queues_are_encrypted(resources: dict[str, Any]) -> None:
    for name in ("OrdersQueue", "OrdersDeadLetterQueue"):
        assert resources[name]["Properties"]["SqsManagedSseEnabled"] is True, name


def test_attachments_bucket_is_encrypted_private_and_expires_uploads(resources: dict[str, Any]) -> None:
    props = resources["AttachmentsBucket"]["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert any(rule["Status"] == "Enabled" for rule in props["LifecycleConfiguration"]["Rules"])


@pytest.mark.parametrize(
    ("policy", "resource"),
    [
        ("OrdersQueuesTlsOnlyPolicy", "OrdersQueue"),
        ("OrdersQueuesTlsOnlyPolicy", "OrdersDeadLetterQueue"),
        ("AttachmentsBucketTlsOnlyPolicy", "AttachmentsBucket"),
    ],
)
def test_resource_refuses_requests_without_tls(resources: dict[str, Any], policy: str, resource: str) -> None:
    props = resources[policy]["Properties"]
    targets = props.get("Queues", []) + ([props["Bucket"]] if "Bucket" in props else [])
    assert {"Ref": resource} in targets
    denials = [
        statement
        for _, statement in _statements({policy: resources[policy]})
        if statement["Effect"] == "Deny"
        and statement["Principal"] == "*"
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert denials
    assert {"Fn::GetAtt": [resource, "Arn"]} in _as_list(denials[0]["Resource"])


def test_attachment_uploads_under_orders_reach_the_record_function_through_a_queue(
    resources: dict[str, Any],
) -> None:
    """S3 -> SQS -> function: a failed notification is retried and kept, never discarded."""
    (notification,) = resources["AttachmentsBucket"]["Properties"]["NotificationConfiguration"][
        "QueueConfigurations"
    ]
    assert notification["Queue"] == {"Fn::GetAtt": ["AttachmentsQueue", "Arn"]}
    assert notification["Event"].startswith("s3:ObjectCreated:")
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "orders/"}]
    (mapping,) = [
        res["Properties"]
        for res in _of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if res["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["AttachmentsQueue", "Arn"]}
    ]
    assert mapping["FunctionName"] == {"Ref": "RecordAttachmentFunctionAliaslive"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    redrive = resources["AttachmentsQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["AttachmentsDeadLetterQueue", "Arn"]}
    timeout = resources["RecordAttachmentFunction"]["Properties"]["Timeout"]
    assert resources["AttachmentsQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_only_the_attachments_bucket_may_send_to_the_attachments_queue(resources: dict[str, Any]) -> None:
    assert resources["AttachmentsBucket"]["DependsOn"] == "AttachmentsQueuePolicy"
    (allow,) = [
        statement
        for name, statement in _statements(resources)
        if name == "AttachmentsQueuePolicy" and statement["Effect"] == "Allow"
    ]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert set(allow["Condition"]) == {"ArnEquals", "StringEquals"}


# ---------------------------------------------------------------- API


def _methods(resources: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in resources["Api"]["Properties"]["Body"]["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_api_has_the_routes_of_the_contract(resources: dict[str, Any]) -> None:
    routes = {(method, path) for path, method, _ in _methods(resources)}
    assert routes == {
        ("post", "/orders"),
        ("get", "/orders/{orderId}"),
        ("post", "/orders/{orderId}/attachments"),
    }


def test_every_api_method_requires_iam_authorization(resources: dict[str, Any]) -> None:
    body = resources["Api"]["Properties"]["Body"]
    scheme = body["components"]["securitySchemes"]["AWS_IAM"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    for path, method, operation in _methods(resources):
        assert operation["security"] == [{"AWS_IAM": []}], (method, path)


def test_api_calls_functions_without_the_callers_credentials(resources: dict[str, Any]) -> None:
    for path, method, operation in _methods(resources):
        assert "credentials" not in operation["x-amazon-apigateway-integration"], (method, path)


def test_every_post_body_is_validated_against_a_model(resources: dict[str, Any]) -> None:
    body = resources["Api"]["Properties"]["Body"]
    validators = body["x-amazon-apigateway-request-validators"]
    posts = [(path, operation) for path, method, operation in _methods(resources) if method == "post"]
    assert len(posts) == 2
    for path, operation in posts:
        assert validators[operation["x-amazon-apigateway-request-validator"]]["validateRequestBody"], path
        assert operation["requestBody"]["required"] is True, path
        schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert schema_ref.removeprefix("#/components/schemas/") in body["components"]["schemas"], path


@pytest.mark.parametrize(
    ("model", "schema_name"),
    [("orderrequest", "ORDER_REQUEST_SCHEMA"), ("attachmentrequest", "ATTACHMENT_REQUEST_SCHEMA")],
)
def test_api_models_are_the_schemas_the_code_validates_with(
    resources: dict[str, Any], model: str, schema_name: str
) -> None:
    """API Gateway rejects bad bodies before the function runs; the two must agree on what is bad."""
    code_schema = getattr(importlib.import_module("orders.models.schema"), schema_name)
    assert resources["Api"]["Properties"]["Body"]["components"]["schemas"][model] == code_schema


def test_validation_errors_answer_in_the_service_error_shape(resources: dict[str, Any]) -> None:
    responses = resources["Api"]["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    template = responses["BAD_REQUEST_BODY"]["responseTemplates"]["application/json"]
    assert responses["BAD_REQUEST_BODY"]["statusCode"] == "400"
    # The template is JSON once API Gateway fills in its $-variables.
    assert set(json.loads(template.replace("$", "")).keys()) == {"message", "errors"}


def test_api_stage_throttles_traces_and_logs_access_as_json(resources: dict[str, Any]) -> None:
    stage = resources["Apiv1Stage"]["Properties"]
    (settings,) = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0
    assert stage["TracingEnabled"] is True
    access_log = stage["AccessLogSetting"]
    assert resources[access_log["DestinationArn"]["Fn::GetAtt"][0]]["Type"] == "AWS::Logs::LogGroup"
    assert "requestId" in json.loads(access_log["Format"])


# ---------------------------------------------------------------- IAM


def test_no_iam_statement_allows_every_action(resources: dict[str, Any]) -> None:
    offenders = [
        (name, statement)
        for name, statement in _statements(resources)
        if "*" in _as_list(statement.get("Action", []))
    ]
    assert offenders == []


def test_no_function_may_act_on_every_resource(resources: dict[str, Any]) -> None:
    roles = {f"{name}Role" for name in HANDLERS}
    offenders = [
        (name, statement)
        for name, statement in _statements(resources)
        if name in roles and statement["Effect"] == "Allow" and "*" in _as_list(statement["Resource"])
    ]
    assert offenders == []


# ---------------------------------------------------------------- linters


def test_cfn_lint_reports_no_findings() -> None:
    # What `sam validate --lint` runs (cfnlint.api.lint on the template), in this process.
    findings = lint_file(TEMPLATE, ManualArgs(regions=["us-east-1"]))
    assert [str(finding) for finding in findings] == []


def test_bake_alarm_is_named_for_the_pipeline_and_watches_every_deployment_alarm(
    resources: dict[str, Any],
) -> None:
    """The pipeline's bake condition watches `<stack>-bake`; it must combine every deployment alarm."""
    bake = resources["BakeAlarm"]["Properties"]
    assert bake["AlarmName"] == {"Fn::Sub": "${AWS::StackName}-bake"}
    deployment_alarms = {
        alarm["Name"]["Ref"]
        for group in _of_type(resources, "AWS::CodeDeploy::DeploymentGroup").values()
        for alarm in group["Properties"]["AlarmConfiguration"]["Alarms"]
    }
    assert set(re.findall(r'ALARM\("\$\{(\w+)\}"\)', bake["AlarmRule"]["Fn::Sub"])) == deployment_alarms


# ---------------------------------------------------------------- staging traffic source


def test_staging_declares_its_own_traffic_source_and_only_staging(
    resources: dict[str, Any], source: dict[str, Any]
) -> None:
    function = resources["StagingTrafficFunction"]
    assert function["Condition"] == "IsStaging"
    assert source["Conditions"]["IsStaging"] == {"Fn::Equals": [{"Ref": "Environment"}, "staging"]}
    assert function["Properties"]["Handler"] == "orders.handlers.traffic.handler"
    rules = [
        res
        for res in _of_type(resources, "AWS::Events::Rule").values()
        if res["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["StagingTrafficFunction", "Arn"]}
    ]
    assert [rule["Properties"]["ScheduleExpression"] for rule in rules] == ["rate(1 minute)"]


def test_the_traffic_source_may_only_call_the_staging_api(resources: dict[str, Any]) -> None:
    statements = [
        statement for role, statement in _statements(resources) if role == "StagingTrafficFunctionRole"
    ]
    custom = [statement for statement in statements if statement.get("Sid") == "CallTheStagingApi"]
    assert [statement["Action"] for statement in custom] == ["execute-api:Invoke"]
    assert "${Api}/v1/" in custom[0]["Resource"]["Fn::Sub"]


def test_the_outbox_sweeper_is_released_in_place_and_pages_operations(resources: dict[str, Any]) -> None:
    """A once-a-minute job gives a canary nothing to judge; its failures page operations instead."""
    assert "SweepUnsentOrdersFunctionDeploymentGroup" not in resources
    alarm = resources["OrdersOutboxStuckAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "SweepUnsentOrdersFunction"}}]
    assert alarm["AlarmActions"] == [{"Ref": "OperationsTopic"}]
