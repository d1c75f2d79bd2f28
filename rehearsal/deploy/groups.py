"""CodeDeploy deployment groups as a transformed template declares them: alias, config, alarms, hooks."""

from __future__ import annotations

from dataclasses import dataclass

from rehearsal.cloud.provision import Stack


@dataclass(frozen=True, kw_only=True)
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
