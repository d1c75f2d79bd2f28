"""What a stack update changes beside the CodeDeploy shift, and its rollback (UPDATE_ROLLBACK).

The deployer snapshots a `Before` when it executes a change set; `restore` puts back everything the
update changed: resources in the local cloud, functions' `$LATEST`, aliases, routes and event
sources. Aliases without a deployment preference move in place (`move_aliases_in_place`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from rehearsal.cloud.provision import Stack, roll_back_stack
from rehearsal.deploy.groups import DeploymentGroup
from rehearsal.runtime.environment import LocalEnvironment, restore_functions


@dataclass(frozen=True, kw_only=True)
class Before:
    """What an update changed from: the deployed stack and where every alias pointed."""

    stack: Stack
    routing: dict[tuple[str, str], dict[str, float]]  # (function, alias) -> weights


def aliases_of(local: LocalEnvironment, stack: Stack) -> dict[tuple[str, str], dict[str, float]]:
    """Where each alias of the stack's functions points now."""
    return {
        (spec.name, spec.alias_name): local.functions.alias_routing(spec.name, spec.alias_name)
        for spec in stack.functions.values()
        if spec.alias_name and local.functions.has_alias(spec.name, spec.alias_name)
    }


def move_aliases_in_place(
    local: LocalEnvironment,
    stack: Stack,
    groups: list[DeploymentGroup],
    changed: dict[str, str],
    log: TextIO,
) -> None:
    """An alias without a deployment preference moves to its function's new version at once, as
    CloudFormation updates an `AWS::Lambda::Alias` without CodeDeploy."""
    deploying = {(g.function, g.alias) for g in groups}
    for logical_id, version in sorted(changed.items()):
        spec = stack.functions[logical_id]
        if spec.alias_name and (spec.name, spec.alias_name) not in deploying:
            local.functions.set_alias(spec.name, spec.alias_name, {version: 1.0})
            log.write(f"Alias {spec.name}:{spec.alias_name} -> {version} (no deployment preference)\n")


def restore(local: LocalEnvironment, before: Before, log: TextIO) -> None:
    """UPDATE_ROLLBACK: resources, functions' `$LATEST`, aliases, routes and event sources as before."""
    updated = local.stack
    for problem in roll_back_stack(local.cloud, deployed=before.stack, updated=updated):
        log.write(f"Rollback: {problem}\n")
    restore_functions(before.stack, local.functions, updated=updated)
    for (function, alias), weights in before.routing.items():
        local.functions.set_alias(function, alias, weights)
    local.apply_stack(before.stack)
    log.write(
        f"Rolled back: resources, {len(before.routing)} aliases, {len(local.gateway.routes)} routes and "
        f"{len(local.sources)} event sources as before the update\n"
    )
