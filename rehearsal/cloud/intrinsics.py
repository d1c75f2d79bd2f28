"""CloudFormation intrinsic functions, resolved only as far as the rehearsal needs them.

`Ref` and `Fn::GetAtt` become names (a resource's own name property when it sets one, else its
logical id), `Fn::Join` and `Fn::Sub` become strings, pseudo parameters get the local cloud's values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rehearsal.base.aws import ACCOUNT_ID, REGION
from rehearsal.base.errors import UserError

_PSEUDO_PARAMETERS = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": "",
}
# Properties that name a resource: a `Ref` to a resource that sets one resolves to that name.
_NAME_PROPERTIES = ("Name", "AlarmName", "TopicName", "StackName", "FunctionName", "BucketName")


class IntrinsicResolver:
    """Resolves the intrinsic functions CDK writes into a pipeline, as far as names and strings go."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self.parameters: Mapping[str, Any] = template.get("Parameters") or {}

    def project_named(self, name: str) -> str:
        """The logical id of the CodeBuild project with this `Name` (a ProjectName given as a string)."""
        for logical_id, resource in self.resources.items():
            properties = resource.get("Properties") or {}
            if resource.get("Type") == "AWS::CodeBuild::Project" and properties.get("Name") == name:
                return str(logical_id)
        raise UserError(f"ProjectName {name} is not a CodeBuild project of the pipeline stack")

    def text(self, value: Any) -> str:
        resolved = self.value(value)
        if isinstance(resolved, str):
            return resolved
        return json.dumps(resolved, separators=(",", ":"))

    def value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if not isinstance(value, Mapping):
            return value if not isinstance(value, bool) else str(value).lower()
        if len(value) == 1:
            ((function, argument),) = value.items()
            handler = getattr(self, "_" + function.replace("::", "_").replace("Fn_", "fn_"), None)
            if handler is not None:
                return handler(argument)
        return {k: self.value(v) for k, v in value.items()}

    def _Ref(self, name: str) -> str:  # named after the intrinsic function
        if name in _PSEUDO_PARAMETERS:
            return _PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return str(self.parameters[name].get("Default", name))
        resource = self.resources.get(name) or {}
        properties = resource.get("Properties") or {}
        for key in _NAME_PROPERTIES:
            if isinstance(properties.get(key), str):
                return str(properties[key])
        if resource.get("Type") == "AWS::S3::Bucket":
            return name.lower()  # a generated bucket name must be lower case to be usable offline
        return name

    def _fn_GetAtt(self, argument: Any) -> str:  # named after the intrinsic function
        parts = argument.split(".", 1) if isinstance(argument, str) else [self.text(a) for a in argument]
        return ".".join(parts)

    def _fn_Join(self, argument: Sequence[Any]) -> str:  # named after the intrinsic function
        separator, parts = argument
        return str(separator).join(self.text(p) for p in parts)

    def _fn_Sub(self, argument: Any) -> str:  # named after the intrinsic function
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        result = str(text)
        for name, value in variables.items():
            result = result.replace("${" + name + "}", self.text(value))
        while "${" in result:
            start = result.index("${")
            end = result.index("}", start)
            name = result[start + 2 : end]
            replacement = self._Ref(name) if "." not in name else name
            result = result[:start] + replacement + result[end + 1 :]
        return result
