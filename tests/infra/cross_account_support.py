"""Reading what the synthesized pipeline hands a service stack (shared by the infra tests)."""

from __future__ import annotations

import json
from typing import Any


def render(value: Any) -> str:
    """A CloudFormation string with its tokens shown as `<LogicalId.Attribute>` / `<Ref>`."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(render(part) for part in parts)
    if "Fn::GetAtt" in value:
        return "<" + ".".join(value["Fn::GetAtt"]) + ">"
    if "Ref" in value:
        return f"<{value['Ref']}>"
    raise ValueError(f"cannot render {value!r}")


def parameter_overrides(action: dict[str, Any]) -> dict[str, str]:
    """A CloudFormation deploy action's ParameterOverrides (an Fn::Join once a token is in it)."""
    overrides: dict[str, str] = json.loads(render(action["Configuration"]["ParameterOverrides"]))
    return overrides
