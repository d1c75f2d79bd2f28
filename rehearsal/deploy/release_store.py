"""What the local deployer keeps between releases, and what it reads from a provisioned stack.

moto's state dies with its process, so an environment cannot simply stay up between two
`make release` runs. The deployer keeps, per environment, the releases it deployed under
`.rehearsal/deployer/<environment>/`: the packaged template rewritten to point at its code zips
(downloaded from the artifact bucket), the parameters and the commit. A later release starts the
environment again from the release it last deployed, then canaries from it to the new one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal.alarms.evaluator import AlarmDefinition, CompositeAlarmDefinition, UnsupportedAlarmError
from rehearsal.base.clock import timestamp
from rehearsal.base.errors import UserError
from rehearsal.cloud.provision import Stack
from rehearsal.cloud.server import LocalCloud
from rehearsal.cloud.template import UnresolvedReferenceError, load_template

TEMPLATE_FILE = "template.json"
RECORD_FILE = "release.json"


@dataclass(frozen=True)
class SavedRelease:
    """One release of an environment as the deployer stored it."""

    directory: Path
    commit: str
    stack_name: str
    parameters: dict[str, str]

    @property
    def template(self) -> Path:
        return self.directory / TEMPLATE_FILE


class ReleaseStore:
    """`<root>/<environment>/releases/<n>/` plus `pointers.json` naming the current and previous one."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _pointers_path(self, environment: str) -> Path:
        return self.root / environment / "pointers.json"

    def _pointers(self, environment: str) -> dict[str, str | None]:
        path = self._pointers_path(environment)
        if not path.is_file():
            return {"current": None, "previous": None}
        loaded: dict[str, str | None] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    def _load(self, directory: str | None) -> SavedRelease | None:
        if directory is None or not (Path(directory) / RECORD_FILE).is_file():
            return None
        record = json.loads((Path(directory) / RECORD_FILE).read_text(encoding="utf-8"))
        return SavedRelease(
            directory=Path(directory),
            commit=str(record["commit"]),
            stack_name=str(record["stack_name"]),
            parameters=dict(record["parameters"]),
        )

    def current(self, environment: str) -> SavedRelease | None:
        return self._load(self._pointers(environment)["current"])

    def stage(
        self,
        environment: str,
        *,
        packaged_template: Path,
        commit: str,
        stack_name: str,
        parameters: Mapping[str, str],
        tooling: LocalCloud | None,
    ) -> SavedRelease:
        """Copy a packaged template and its code out of the artifact bucket into a new release folder."""
        releases = self.root / environment / "releases"
        releases.mkdir(parents=True, exist_ok=True)
        number = 1 + max((int(p.name) for p in releases.iterdir() if p.name.isdigit()), default=0)
        directory = releases / str(number)
        (directory / "code").mkdir(parents=True)
        document = load_template(packaged_template)
        downloads: dict[str, str] = {}

        def localize(properties: dict[str, Any]) -> None:
            uri = properties.get("CodeUri")
            if not (isinstance(uri, str) and uri.startswith("s3://")):
                return
            if uri not in downloads:
                bucket, _, key = uri.removeprefix("s3://").partition("/")
                target = directory / "code" / f"{len(downloads) + 1}.zip"
                if tooling is None:
                    raise UserError(f"{uri}: no build ran in this release, so no artifact bucket holds it")
                try:
                    tooling.client("s3").download_file(bucket, key, str(target))
                except Exception as error:  # botocore's ClientError, a missing bucket
                    raise UserError(f"cannot download {uri} from the artifact bucket: {error}") from error
                downloads[uri] = f"code/{target.name}"
            properties["CodeUri"] = downloads[uri]

        for resource in (document.get("Resources") or {}).values():
            if resource.get("Type") == "AWS::Serverless::Function":
                localize(resource.setdefault("Properties", {}))
        (directory / TEMPLATE_FILE).write_text(json.dumps(document, indent=1), encoding="utf-8")
        record = {
            "commit": commit,
            "stack_name": stack_name,
            "parameters": dict(parameters),
            "packaged_from": {uri: path for uri, path in downloads.items()},
            "staged_at": timestamp(),
        }
        (directory / RECORD_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        return SavedRelease(directory, commit, stack_name, dict(parameters))

    def promote(self, environment: str, release: SavedRelease) -> None:
        """`release` now serves the environment; the one before it is kept for a rollback."""
        pointers = self._pointers(environment)
        self._write(environment, {"current": str(release.directory), "previous": pointers["current"]})

    def demote(self, environment: str) -> SavedRelease | None:
        """A rollback: the previous release serves again (and is returned); None when there was none."""
        pointers = self._pointers(environment)
        previous = self._load(pointers["previous"])
        if previous is not None:
            self._write(environment, {"current": str(previous.directory), "previous": None})
        return previous

    def discard(self, release: SavedRelease) -> None:
        shutil.rmtree(release.directory, ignore_errors=True)

    def _write(self, environment: str, pointers: dict[str, str | None]) -> None:
        path = self._pointers_path(environment)
        path.write_text(json.dumps(pointers, indent=2), encoding="utf-8")
        kept = {value for value in pointers.values() if value}
        for folder in (self.root / environment / "releases").iterdir():
            if str(folder) not in kept:
                shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class DeploymentGroup:
    """A function's CodeDeploy deployment group, read from the transformed template."""

    function: str  # physical name
    alias: str
    config_name: str
    alarms: tuple[str, ...]
    before_hook: str | None
    after_hook: str | None


def deployment_groups(stack: Stack) -> list[DeploymentGroup]:
    """One per alias with a `CodeDeployLambdaAliasUpdate` policy (SAM's `DeploymentPreference`)."""
    resources = stack.template.resources
    groups: list[DeploymentGroup] = []
    for resource in resources.values():
        policy = (resource.get("UpdatePolicy") or {}).get("CodeDeployLambdaAliasUpdate")
        if resource.get("Type") != "AWS::Lambda::Alias" or not policy:
            continue
        properties = resource["Properties"]
        group_ref = policy.get("DeploymentGroupName") or {}
        group = resources.get(group_ref.get("Ref", ""), {}).get("Properties") or {}
        resolve = stack.resolver.resolve
        alarms = (group.get("AlarmConfiguration") or {}).get("Alarms") or []
        hooks = {
            key: str(resolve(policy[key])) if key in policy else None
            for key in ("BeforeAllowTrafficHook", "AfterAllowTrafficHook")
        }
        groups.append(
            DeploymentGroup(
                function=str(resolve(properties["FunctionName"])),
                alias=str(properties["Name"]),
                config_name=str(
                    resolve(group.get("DeploymentConfigName", "CodeDeployDefault.LambdaAllAtOnce"))
                ),
                alarms=tuple(str(resolve(item["Name"])) for item in alarms),
                before_hook=hooks["BeforeAllowTrafficHook"],
                after_hook=hooks["AfterAllowTrafficHook"],
            )
        )
    return groups


def alarm_definitions(
    stack: Stack,
) -> tuple[list[AlarmDefinition], list[CompositeAlarmDefinition], list[str]]:
    """The stack's metric and composite alarms under their CloudWatch names, and the ones left out.

    The name is the one `Ref` gives (what deployment groups and composite rules name), so it is
    the physical name: `AlarmName`, else CloudFormation's generated `<stack>-<LogicalId>`.
    """
    metric: list[AlarmDefinition] = []
    composite: list[CompositeAlarmDefinition] = []
    problems: list[str] = []
    for logical_id, resource in stack.template.resources.items():
        kind = resource.get("Type")
        if kind not in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
            continue
        if not stack.resolver.resource_included(resource):
            continue
        name = str(
            stack.resolver.refs.get(logical_id) or stack.resolver.placeholders.get(logical_id) or logical_id
        )
        try:
            properties = stack.resolver.resolve(resource.get("Properties", {}))
            if kind == "AWS::CloudWatch::Alarm":
                metric.append(AlarmDefinition.from_properties(name, properties))
            else:
                composite.append(CompositeAlarmDefinition.from_properties(name, properties))
        except UnresolvedReferenceError as error:
            problems.append(f"{logical_id}: refers to {error} which has no value yet")
        except UnsupportedAlarmError as error:
            problems.append(f"{logical_id}: {error}")
    return metric, composite, problems
