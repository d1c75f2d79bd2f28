"""The team's pipeline settings: one frozen config built from CDK context and validated once.

Every error names the context key and the fix in one line; `app.py` prints it and exits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# CodeDeploy's predefined Lambda deployment configurations (the SAM DeploymentPreference types).
CANARY_TYPES = frozenset(
    {
        "Canary10Percent5Minutes",
        "Canary10Percent10Minutes",
        "Canary10Percent15Minutes",
        "Canary10Percent30Minutes",
        "Linear10PercentEvery1Minute",
        "Linear10PercentEvery2Minutes",
        "Linear10PercentEvery3Minutes",
        "Linear10PercentEvery10Minutes",
        "AllAtOnce",
    }
)

# The shipped example values: synth works with them, `make deploy` refuses them.
EXAMPLE_ACCOUNTS = frozenset({"111111111111", "222222222222", "333333333333"})
EXAMPLE_CONNECTION_ID = "00000000-0000-0000-0000-000000000000"

_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,29}$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")
_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}$"
)
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(root|role/[\w+=,.@/-]+|user/[\w+=,.@/-]+)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ALARM_NAME = re.compile(r"^[^\s].{0,200}$")
_QUALIFIER = re.compile(r"^[a-z0-9]{1,10}$")
# The review URL names the commit being approved: `{commitId}` becomes the source's CommitId variable.
COMMIT_PLACEHOLDER = "{commitId}"
_REVIEW_URL = re.compile(r"^https://\S*\{commitId\}\S*$")
_MAX_BAKE_MINUTES = 120


class ConfigError(ValueError):
    """A context value is missing or wrong; the message names the key and the fix."""


class ExecutionMode(StrEnum):
    """CodePipeline V2 execution modes this pipeline supports (PARALLEL is refused: see ADR 0003)."""

    QUEUED = "QUEUED"
    SUPERSEDED = "SUPERSEDED"


@dataclass(frozen=True, kw_only=True)
class EnvironmentConfig:
    """One deployed copy of the service: where it lives and how it is released."""

    name: str
    account: str
    region: str
    canary_type: str
    bake_minutes: int
    stack_name: str
    bake_alarm_name: str


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Everything the pipeline stack needs; built once at the edge from CDK context."""

    service_name: str
    repository: str
    branch: str
    connection_arn: str
    pipeline_account: str
    pipeline_region: str
    staging: EnvironmentConfig
    production: EnvironmentConfig
    release_manager_emails: tuple[str, ...]
    notification_emails: tuple[str, ...]
    approver_principals: tuple[str, ...]
    execution_mode: ExecutionMode
    trigger_file_paths_excluded: tuple[str, ...]
    review_url: str
    bootstrap_qualifier: str

    @property
    def pipeline_name(self) -> str:
        return f"{self.service_name}-release"

    @property
    def stack_name(self) -> str:
        return f"{self.service_name}-pipeline"

    def review_url_for(self, commit_id: str) -> str:
        """The review URL naming one commit (`commit_id` is a CodePipeline variable at synth time)."""
        return self.review_url.replace(COMMIT_PLACEHOLDER, commit_id)

    @property
    def environments(self) -> tuple[EnvironmentConfig, EnvironmentConfig]:
        return (self.staging, self.production)

    @property
    def is_cross_account(self) -> bool:
        return any(env.account != self.pipeline_account for env in self.environments)

    def example_values_in_use(self) -> list[str]:
        """Context keys that still hold the shipped example values."""
        keys = [
            key
            for key, account in (
                ("pipelineAccount", self.pipeline_account),
                ("stagingAccount", self.staging.account),
                ("productionAccount", self.production.account),
            )
            if account in EXAMPLE_ACCOUNTS
        ]
        if EXAMPLE_CONNECTION_ID in self.connection_arn:
            keys.append("connectionArn")
        return keys

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> PipelineConfig:
        """Build and validate the config; raises ConfigError naming the first wrong key."""
        reader = _ContextReader(context)
        service_name = reader.text("serviceName", _SERVICE_NAME, "lower-case letters, digits and '-'")
        pipeline_account = reader.text("pipelineAccount", _ACCOUNT, "a 12-digit AWS account id")
        pipeline_region = reader.text("pipelineRegion", _REGION, "an AWS region such as eu-west-1")
        environments = [
            _read_environment(reader, name=name, service_name=service_name, pipeline_region=pipeline_region)
            for name in ("staging", "production")
        ]
        emails = reader.text_list("releaseManagerEmails", _EMAIL, "e-mail addresses")
        config = cls(
            service_name=service_name,
            repository=reader.text("repository", _REPOSITORY, "'owner/name' of the source repository"),
            branch=reader.text("branch", _BRANCH, "the branch that releases, such as main"),
            connection_arn=reader.text(
                "connectionArn", _CONNECTION_ARN, "the ARN of a CodeConnections connection"
            ),
            pipeline_account=pipeline_account,
            pipeline_region=pipeline_region,
            staging=environments[0],
            production=environments[1],
            release_manager_emails=emails,
            notification_emails=reader.text_list(
                "notificationEmails", _EMAIL, "e-mail addresses", default=list(emails)
            ),
            approver_principals=reader.text_list(
                "approverPrincipals", _PRINCIPAL_ARN, "IAM role or user ARNs allowed to approve"
            ),
            execution_mode=reader.execution_mode("executionMode"),
            trigger_file_paths_excluded=tuple(
                reader.raw_list("triggerFilePathsExcluded", default=["docs/**", "**/*.md"])
            ),
            review_url=reader.text(
                "reviewUrl",
                _REVIEW_URL,
                "an https:// URL naming the commit with {commitId}, "
                "e.g. https://github.com/<owner>/<repo>/commit/{commitId}",
            ),
            bootstrap_qualifier=reader.text(
                "bootstrapQualifier", _QUALIFIER, "the cdk bootstrap qualifier", default="hnb659fds"
            ),
        )
        return config

    def check_deployable(self) -> None:
        """Refuse the shipped example values before anything reaches AWS."""
        keys = self.example_values_in_use()
        if keys:
            raise ConfigError(
                f"{keys[0]} still holds the shipped example value: set your own value in cdk.json "
                f"(context.{keys[0]}) before make deploy"
            )


def _read_environment(
    reader: _ContextReader, *, name: str, service_name: str, pipeline_region: str
) -> EnvironmentConfig:
    region = reader.text(f"{name}Region", _REGION, "an AWS region such as eu-west-1")
    if region != pipeline_region:
        raise ConfigError(
            f"{name}Region is {region} but pipelineRegion is {pipeline_region}: set {name}Region to "
            f"{pipeline_region} (the packaged template's code lives in the pipeline's region; see ADR 0005)"
        )
    stack_name = f"{service_name}-{name}"
    alarm_template = reader.text(
        "bakeAlarmName", _ALARM_NAME, "an alarm name; {stackName} is replaced", default="{stackName}-bake"
    )
    return EnvironmentConfig(
        name=name,
        account=reader.text(f"{name}Account", _ACCOUNT, "a 12-digit AWS account id"),
        region=region,
        canary_type=reader.choice(
            f"{name}CanaryType",
            CANARY_TYPES,
            default="Canary10Percent5Minutes" if name == "staging" else "Canary10Percent10Minutes",
        ),
        bake_minutes=reader.integer(
            f"{name}BakeMinutes", low=1, high=_MAX_BAKE_MINUTES, default=5 if name == "staging" else 15
        ),
        stack_name=stack_name,
        bake_alarm_name=alarm_template.replace("{stackName}", stack_name),
    )


class _ContextReader:
    """Reads typed values from CDK context; `-c key=value` overrides arrive as strings."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self._context = context

    def _value(self, key: str, default: Any) -> Any:
        value = self._context.get(key)
        if value is None or value == "":
            if default is None:
                raise ConfigError(f"{key} is not set: add it to the context in cdk.json or pass -c {key}=...")
            return default
        return value

    def text(self, key: str, pattern: re.Pattern[str], what: str, *, default: str | None = None) -> str:
        value = self._value(key, default)
        if not isinstance(value, str) or not pattern.match(value):
            raise ConfigError(f"{key}={value!r} is not valid: set it to {what}")
        return value

    def raw_list(self, key: str, *, default: list[str] | None = None) -> list[str]:
        value = self._value(key, default)
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{key}={value!r} is not valid: set it to a list of strings")
        return value

    def text_list(
        self, key: str, pattern: re.Pattern[str], what: str, *, default: list[str] | None = None
    ) -> tuple[str, ...]:
        values = self.raw_list(key, default=default)
        if not values:
            raise ConfigError(f"{key} is empty: set it to one or more {what}")
        for value in values:
            if not pattern.match(value):
                raise ConfigError(f"{key} contains {value!r}: set it to {what}")
        return tuple(values)

    def choice(self, key: str, allowed: frozenset[str], *, default: str) -> str:
        value = self._value(key, default)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not valid: use one of {', '.join(sorted(allowed))}")
        return str(value)

    def integer(self, key: str, *, low: int, high: int, default: int) -> int:
        value = self._value(key, default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = low - 1
        if not low <= number <= high:
            raise ConfigError(f"{key}={value!r} is not valid: set it to a whole number from {low} to {high}")
        return number

    def execution_mode(self, key: str) -> ExecutionMode:
        value = self._value(key, ExecutionMode.SUPERSEDED.value)
        try:
            return ExecutionMode(value)
        except ValueError:
            raise ConfigError(
                f"{key}={value!r} is not valid: use SUPERSEDED or QUEUED "
                "(PARALLEL would deploy two releases into one environment at once)"
            ) from None
