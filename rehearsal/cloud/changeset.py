"""A CloudFormation change set, offline: what an update of a stack adds, modifies (or replaces) and removes.

The new transformed template and its parameter values are compared with the deployed ones, resource
by resource, as `CreateChangeSet` compares them: a logical id only in the new template is an Add,
only in the old one a Remove, in both with different properties a Modify. A Modify is a replacement
(`True`) when a property its type's registry schema lists in `createOnlyProperties` changes,
`Conditional` when a `conditionalCreateOnlyProperties` one changes or a create-only one changes only
because it refers to a resource being replaced, else `False`. Properties are compared with the
parameters, pseudo parameters and conditions settled, so a changed parameter value shows as a change
of the resources that use it. The capabilities the template needs are checked here too, as
`CreateChangeSet` checks them (InsufficientCapabilities).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rehearsal.base.errors import UserError
from rehearsal.cloud.schemas import ResourceSchema, resource_schema
from rehearsal.cloud.template import NO_VALUE, Resolver, TransformedTemplate, UnresolvedReferenceError

ADD, MODIFY, REMOVE = "Add", "Modify", "Remove"
# CreateChangeSet's Capabilities: these IAM types need CAPABILITY_IAM, or CAPABILITY_NAMED_IAM when
# they carry a custom name (the property below).
IAM_NAME_PROPERTIES: Mapping[str, str | None] = {
    "AWS::IAM::AccessKey": None,
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": None,
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::UserToGroupAddition": None,
}
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass(frozen=True, kw_only=True)
class ResourceChange:
    """One row of `describe-change-set`: the action on one logical id and whether it replaces it."""

    action: str  # Add, Modify, Remove
    logical_id: str
    resource_type: str
    replacement: str | None = None  # Modify only: "True", "False", "Conditional"
    properties: tuple[str, ...] = ()  # Modify only: the top-level properties that change
    create_only: tuple[str, ...] = ()  # Modify only: the changed properties that force the replacement


@dataclass(frozen=True, kw_only=True)
class ChangeSet:
    stack_name: str
    changes: tuple[ResourceChange, ...]
    outputs_changed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """CloudFormation's "The submitted information didn't contain changes"."""
        return not self.changes and not self.outputs_changed

    def of(self, action: str, resource_type: str | None = None) -> set[str]:
        """Logical ids with this action (and of this type, when given)."""
        return {
            change.logical_id
            for change in self.changes
            if change.action == action and resource_type in (None, change.resource_type)
        }

    @property
    def replacements(self) -> tuple[ResourceChange, ...]:
        return tuple(
            c for c in self.changes if c.action == MODIFY and c.replacement in ("True", "Conditional")
        )

    def describe(self) -> str:
        """The change set as `aws cloudformation describe-change-set` summarizes it, replacements named."""
        if self.empty:
            return f"Change set for {self.stack_name}: no changes (template and parameters as deployed)\n"
        rows = [("Action", "LogicalResourceId", "ResourceType", "Replacement")]
        rows += [
            (c.action, c.logical_id, c.resource_type, c.replacement or "N/A")
            for c in sorted(self.changes, key=lambda c: ((ADD, MODIFY, REMOVE).index(c.action), c.logical_id))
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [f"Change set for {self.stack_name}: {len(self.changes)} resource changes"]
        lines += [
            "  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
        ]
        for change in self.replacements:
            verb = "is replaced" if change.replacement == "True" else "may be replaced"
            lines.append(
                f"  {change.logical_id} ({change.resource_type}) {verb}: "
                f"{', '.join(change.create_only)} cannot change in place"
            )
        if self.outputs_changed:
            lines.append(f"  Outputs changed: {', '.join(self.outputs_changed)}")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the diff


def create_change_set(
    *, stack_name: str, deployed: TransformedTemplate, proposed: TransformedTemplate, region: str
) -> ChangeSet:
    """What executing `proposed` over the stack deployed from `deployed` would do, per logical id."""
    before, after = _included(deployed), _included(proposed)
    old_resolver, new_resolver = Resolver.for_template(deployed), Resolver.for_template(proposed)
    for logical_id in sorted(set(before) & set(after)):
        old_type, new_type = before[logical_id].get("Type"), after[logical_id].get("Type")
        if old_type != new_type:
            raise UserError(
                f"{logical_id}: Update of resource type is not permitted ({old_type} -> {new_type}): "
                "give the new resource another logical id"
            )
    old_values = {lid: _settled(res.get("Properties") or {}, old_resolver) for lid, res in before.items()}
    new_values = {lid: _settled(res.get("Properties") or {}, new_resolver) for lid, res in after.items()}
    changes = [ResourceChange(action=ADD, logical_id=lid, resource_type=after[lid]["Type"]) for lid in after]
    changes = [c for c in changes if c.logical_id not in before]
    changes += [
        ResourceChange(action=REMOVE, logical_id=lid, resource_type=before[lid]["Type"])
        for lid in before
        if lid not in after
    ]
    changes += _modifications(
        {lid: (old_values[lid], new_values[lid]) for lid in before if lid in after},
        {lid: str(after[lid]["Type"]) for lid in after},
        region,
    )
    outputs = _changed_outputs(deployed, proposed, old_resolver, new_resolver)
    return ChangeSet(stack_name=stack_name, changes=tuple(changes), outputs_changed=outputs)


def _included(template: TransformedTemplate) -> dict[str, dict[str, Any]]:
    resolver = Resolver.for_template(template)
    return {lid: res for lid, res in template.resources.items() if resolver.resource_included(res)}


def _modifications(
    pairs: Mapping[str, tuple[dict[str, Any], dict[str, Any]]], types: Mapping[str, str], region: str
) -> list[ResourceChange]:
    """Modify rows; a replacement spreads to the resources referring to it, until none is new."""
    static = {lid: _changed_keys(old, new) for lid, (old, new) in pairs.items()}
    replaced: set[str] = set()
    while True:
        rows: dict[str, ResourceChange] = {}
        for logical_id, (_, new) in pairs.items():
            refers = {key for key, value in new.items() if _references(value) & replaced}
            dynamic = refers - static[logical_id]
            row = _modification(
                logical_id,
                resource_type=types[logical_id],
                static=static[logical_id],
                dynamic=dynamic,
                region=region,
            )
            if row is not None:
                rows[logical_id] = row
        now = {lid for lid, row in rows.items() if row.replacement in ("True", "Conditional")}
        if now <= replaced:
            return list(rows.values())
        replaced |= now


def _modification(
    logical_id: str,
    *,
    resource_type: str,
    static: set[str],
    dynamic: set[str],
    region: str,
) -> ResourceChange | None:
    if not static and not dynamic:
        return None
    schema = resource_schema(resource_type, region)
    create_only, conditional = _create_only(schema)
    forced = sorted(static & create_only)
    maybe = sorted((static & conditional) | (dynamic & (create_only | conditional)))
    if schema is None:  # no registry schema: CloudFormation's answer depends on the type's handler
        maybe = sorted(static | dynamic)
    replacement = "True" if forced else "Conditional" if maybe else "False"
    return ResourceChange(
        action=MODIFY,
        logical_id=logical_id,
        resource_type=resource_type,
        replacement=replacement,
        properties=tuple(sorted(static | dynamic)),
        create_only=tuple(forced or maybe) if replacement != "False" else (),
    )


def _create_only(schema: ResourceSchema | None) -> tuple[set[str], set[str]]:
    """Top-level property names of the create-only pointers (a nested pointer counts for its top level)."""
    if schema is None:
        return set(), set()

    def names(pointers: Iterable[str]) -> set[str]:
        return {pointer.split("/")[2] for pointer in pointers if pointer.startswith("/properties/")}

    return names(schema.create_only), names(schema.conditional_create_only)


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    return {key for key in set(old) | set(new) if _canonical(old.get(key)) != _canonical(new.get(key))}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _changed_outputs(
    deployed: TransformedTemplate, proposed: TransformedTemplate, old: Resolver, new: Resolver
) -> tuple[str, ...]:
    before = _settled(deployed.document.get("Outputs") or {}, old)
    after = _settled(proposed.document.get("Outputs") or {}, new)
    return tuple(sorted(_changed_keys(before, after)))


# ---------------------------------------------------------------- settling what the parameters decide


def _settled(value: Any, resolver: Resolver) -> Any:
    """`value` with parameters, pseudo parameters, mappings and conditions resolved; references to
    resources kept as written (their values are only known while deploying)."""
    if isinstance(value, list):
        items = [_settled(item, resolver) for item in value]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and (next(iter(value)) == "Ref" or next(iter(value)).startswith("Fn::")):
        return _settled_function(next(iter(value)), value, resolver)
    settled = {key: _settled(item, resolver) for key, item in value.items()}
    return {key: item for key, item in settled.items() if item is not NO_VALUE}


def _settled_function(key: str, value: dict[str, Any], resolver: Resolver) -> Any:
    argument = value[key]
    if key == "Fn::If" and isinstance(argument, list) and len(argument) == 3:
        return _settled(argument[1] if resolver.condition(argument[0]) else argument[2], resolver)
    if key == "Fn::Sub":
        return _settled_sub(argument, resolver)
    try:
        return resolver.resolve(value)
    except (UnresolvedReferenceError, IndexError, KeyError, TypeError, ValueError):
        # It depends on a value only known while deploying (a Select over an ARN not made yet...).
        return {key: _settled(argument, resolver)}


def _settled_sub(argument: Any, resolver: Resolver) -> Any:
    text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
    local = {name: _settled(item, resolver) for name, item in variables.items()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in resolver.parameters and name not in local:
            return str(resolver.parameters[name])
        if isinstance(local.get(name), str | int | float):
            return str(local[name])
        return match.group(0)

    settled = _SUB_VARIABLE.sub(replace, str(text))
    remaining = {name: item for name, item in local.items() if f"${{{name}}}" in settled}
    if not _SUB_VARIABLE.search(settled):
        return settled
    return {"Fn::Sub": [settled, remaining] if remaining else settled}


def _references(value: Any) -> set[str]:
    """Logical ids (and parameters) a value refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                target = item[0] if isinstance(item, list) else str(item).split(".", 1)[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else item[0]
                found |= {name.split(".", 1)[0] for name in _SUB_VARIABLE.findall(str(text))}
                found |= _references(item[1] if isinstance(item, list) and len(item) > 1 else {})
            else:
                found |= _references(item)
    return found


# ---------------------------------------------------------------- capabilities


def required_capabilities(
    source: Mapping[str, Any], template: TransformedTemplate, *, direct: bool
) -> list[str]:
    """Why the stack needs each capability, as `Requires capabilities` lines (empty: none).

    `source` is the template as submitted (before macros), `template` the processed one. A change
    set does not need CAPABILITY_AUTO_EXPAND for a transform; a direct create or update does (`direct`).
    """
    needs: list[str] = []
    resolver = Resolver.for_template(template)
    for logical_id, resource in template.resources.items():
        kind = str(resource.get("Type"))
        if kind not in IAM_NAME_PROPERTIES or not resolver.resource_included(resource):
            continue
        name_property = IAM_NAME_PROPERTIES[kind]
        if name_property and name_property in (resource.get("Properties") or {}):
            needs.append(f"CAPABILITY_NAMED_IAM: {logical_id} ({kind}) has a custom {name_property}")
        else:
            needs.append(f"CAPABILITY_IAM: {logical_id} ({kind})")
    transform = source.get("Transform")
    if direct and transform:
        names = transform if isinstance(transform, list) else [transform]
        needs.append(f"CAPABILITY_AUTO_EXPAND: the template uses {', '.join(map(str, names))}")
    return needs


def check_capabilities(
    source: Mapping[str, Any], template: TransformedTemplate, given: Iterable[str], *, direct: bool
) -> None:
    """Refuse, as InsufficientCapabilities, a template that needs a capability the action does not give."""
    granted = set(given)
    if "CAPABILITY_NAMED_IAM" in granted:
        granted.add("CAPABILITY_IAM")
    for need in required_capabilities(source, template, direct=direct):
        capability = need.split(":", 1)[0]
        if capability not in granted:
            reason = need.split(": ", 1)[1]
            raise UserError(
                f"InsufficientCapabilities: Requires capabilities : [{capability}] ({reason}): "
                f"add {capability} to the deploy action's Capabilities"
            )
