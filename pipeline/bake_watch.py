"""`make bake`: watch the environment's bake alarm for the bake minutes, at the end of its test build.

A V2 `CloudWatchAlarm` stage rule reads alarms as the pipeline's role, in the pipeline's account; AWS
documents no way to point it at an alarm in another account (ADR 0018). The test build already runs
as the environment's TestRole, which may read `<stack>-bake`: it polls the alarm for the bake
minutes and fails the action when the alarm goes to ALARM, and the stage's `OnFailure` condition
(Result ROLLBACK) rolls the stage back. Offline, a pipeline minute lasts `PIPELINE_MINUTE_SECONDS`.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# Role chaining caps an assumed role's session at one hour; renew well before it ends.
_RENEW_BEFORE = timedelta(minutes=10)
_MAX_POLL_SECONDS = 30.0


class BakeSettingsError(ValueError):
    """A variable the bake needs is missing or wrong; the message names it and the fix."""


@dataclass(frozen=True, kw_only=True)
class BakeSettings:
    """What the test action tells the bake (its environment variables)."""

    alarm_name: str
    minutes: float
    minute_seconds: float
    role_arn: str
    offline: bool

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> BakeSettings:
        alarm_name = environ.get("BAKE_ALARM_NAME", "")
        if not alarm_name:
            raise BakeSettingsError("BAKE_ALARM_NAME is not set: run make bake BAKE_ALARM_NAME=<stack>-bake")
        return cls(
            alarm_name=alarm_name,
            minutes=_number(environ, "BAKE_MINUTES", None),
            minute_seconds=_number(environ, "PIPELINE_MINUTE_SECONDS", 60.0),
            role_arn=environ.get("TEST_ROLE_ARN", ""),
            offline=bool(environ.get("AWS_ENDPOINT_URL")),
        )

    @property
    def seconds(self) -> float:
        return self.minutes * self.minute_seconds

    @property
    def poll_seconds(self) -> float:
        return max(0.05, min(_MAX_POLL_SECONDS, self.minute_seconds / 4))


def _number(environ: Mapping[str, str], key: str, default: float | None) -> float:
    raw = environ.get(key, "")
    if not raw and default is not None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise BakeSettingsError(f"{key}={raw!r} is not valid: set it to a number of minutes (seconds) >= 0")
    return value


@dataclass(frozen=True, kw_only=True)
class BakeResult:
    passed: bool
    message: str


class CloudWatchAsTestRole:
    """A CloudWatch client as the TestRole, renewed before the chained session's hour ends."""

    def __init__(self, settings: BakeSettings, session_factory: Callable[[], Any]) -> None:
        self._settings = settings
        self._session_factory = session_factory
        self._client: Any = None
        self._expires: datetime | None = None

    def client(self) -> Any:
        if self._client is not None and (
            self._expires is None or self._expires - datetime.now(UTC) > _RENEW_BEFORE
        ):
            return self._client
        base = self._session_factory()
        if self._settings.role_arn and not self._settings.offline:
            credentials = base.client("sts").assume_role(
                RoleArn=self._settings.role_arn, RoleSessionName="release-pipeline-bake"
            )["Credentials"]
            self._expires = credentials["Expiration"]
            self._client = base.client(
                "cloudwatch",
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
            return self._client
        if self._settings.role_arn:
            warnings.warn(
                f"TEST_ROLE_ARN {self._settings.role_arn} not assumed: AWS_ENDPOINT_URL is a local cloud, "
                "where builds act as its administrator (moto cannot evaluate TestRole's trust; ADR 0043)",
                stacklevel=2,
            )
        self._client = base.client("cloudwatch")
        return self._client


def alarm_state(cloudwatch: Any, name: str) -> tuple[str, str] | None:
    """(state, reason) of a metric or composite alarm; None when no alarm has that name."""
    found = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["CompositeAlarm", "MetricAlarm"])
    alarms = [*found.get("CompositeAlarms", []), *found.get("MetricAlarms", [])]
    if not alarms:
        return None
    return str(alarms[0]["StateValue"]), str(alarms[0].get("StateReason", ""))


def watch(
    settings: BakeSettings,
    cloudwatch: Callable[[], Any],
    *,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], None] = time.sleep,
) -> BakeResult:
    """Poll the alarm until the bake time is over (passed) or it is in ALARM (failed)."""
    deadline = clock() + settings.seconds
    while True:
        state = alarm_state(cloudwatch(), settings.alarm_name)
        if state is None:
            return BakeResult(
                passed=False,
                message=f"alarm {settings.alarm_name} does not exist: deploy the stack that defines it first",
            )
        if state[0] == "ALARM":
            return BakeResult(
                passed=False, message=f"alarm {settings.alarm_name} went to ALARM during the bake: {state[1]}"
            )
        if clock() >= deadline:
            return BakeResult(
                passed=True,
                message=f"alarm {settings.alarm_name} stayed out of ALARM for {settings.minutes:g} minutes",
            )
        wait(settings.poll_seconds)


def main(environ: Mapping[str, str] | None = None) -> int:
    import os  # noqa: PLC0415 - the process environment is read here only

    import boto3  # noqa: PLC0415 - only when it talks to AWS
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        settings = BakeSettings.from_environ(os.environ if environ is None else environ)
    except BakeSettingsError as error:
        print(f"make bake: {error}", file=sys.stderr)
        return 2
    print(f"Baking: watching {settings.alarm_name} for {settings.minutes:g} minutes ({settings.seconds:g} s)")
    try:
        result = watch(settings, CloudWatchAsTestRole(settings, boto3.session.Session).client)
    except (BotoCoreError, ClientError) as error:
        # A bake that cannot read its alarm must fail the stage, never pass it.
        print(f"make bake: cannot read alarm {settings.alarm_name}: {error}", file=sys.stderr)
        return 1
    print(result.message, file=sys.stdout if result.passed else sys.stderr)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
