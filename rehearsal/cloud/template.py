"""Read a SAM or CloudFormation template, transform it as AWS does, and resolve its intrinsic functions.

The SAM transform is `aws-sam-translator`, the library CloudFormation runs for
`AWS::Serverless-2016-10-31`. A source template's local `CodeUri` (a folder or a zip) is not
accepted by the translator, so it is swapped for a placeholder S3 location before the transform and
mapped back afterwards; a packaged template's `s3://` locations pass through unchanged. The
placeholder's key is the code's CodeSha256, as `sam package` names what it uploads by content: the
translator derives a function's `AWS::Lambda::Version` logical id from that location, so a new
version is published when, and only when, the code (or the configuration SAM hashes) changes.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from rehearsal.base.errors import UserError

LOCAL_CODE_BUCKET = "rehearsal-local-code"
_SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
NO_VALUE = object()  # what `Ref: AWS::NoValue` resolves to: the property is left out


class UnresolvedReferenceError(Exception):
    """A Ref/GetAtt names something that has no value (yet): a resource not provisioned, say."""


class _TemplateLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`...)."""


def _construct_short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _construct_short_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a template file (YAML with short tags, or JSON); an unreadable one is a `UserError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read the template {path}: {error.strerror}") from error
    try:
        document = yaml.load(text, Loader=_TemplateLoader)  # nosec B506 # SafeLoader subclass
    except yaml.YAMLError as error:
        raise UserError(f"the template {path} is not valid YAML: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise UserError(f"the template {path} has no Resources section: is it a CloudFormation template?")
    return document


@dataclass(frozen=True)
class StackIdentity:
    """The pseudo parameters of a stack: who and where it is."""

    stack_name: str
    region: str
    account_id: str

    def pseudo_parameters(self) -> dict[str, Any]:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/rehearsal"
            ),
            "AWS::NotificationARNs": [],
        }


@dataclass
class TransformedTemplate:
    """A template after the SAM transform, with its parameter values and where its code lives."""

    document: dict[str, Any]
    parameters: dict[str, Any]
    base_dir: Path
    local_code: dict[str, Path] = field(default_factory=dict)  # placeholder S3 key -> folder

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.document.get("Resources", {})
        return resources

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: res for name, res in self.resources.items() if res.get("Type") == resource_type}


def transform_template(
    template: dict[str, Any],
    *,
    identity: StackIdentity,
    parameters: Mapping[str, str] | None = None,
    base_dir: Path,
) -> TransformedTemplate:
    """Apply the SAM transform (when the template declares it) and settle the parameter values."""
    document = copy.deepcopy(template)
    values = _parameter_values(document, parameters or {})
    values.update(identity.pseudo_parameters())
    local_code: dict[str, Path] = {}
    if _declares_sam_transform(document):
        local_code = _swap_local_code_uris(document, base_dir)
        document = _run_sam_translator(document, values, identity.region)
    return TransformedTemplate(document=document, parameters=values, base_dir=base_dir, local_code=local_code)


def _declares_sam_transform(document: dict[str, Any]) -> bool:
    transform = document.get("Transform")
    transforms = transform if isinstance(transform, list) else [transform]
    return _SAM_TRANSFORM in transforms


def _parameter_values(document: dict[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    declared: dict[str, Any] = document.get("Parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise UserError(f"the template has no parameter {unknown[0]}: it declares {', '.join(declared)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value: Any = given[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise UserError(f"the template parameter {name} has no default: pass a value for it")
        allowed = spec.get("AllowedValues")
        if allowed and value not in allowed:
            raise UserError(f"parameter {name}={value!r} is not one of {', '.join(map(str, allowed))}")
        if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
            value = value.split(",")
        values[name] = value
    return values


def _swap_local_code_uris(document: dict[str, Any], base_dir: Path) -> dict[str, Path]:
    local_code: dict[str, Path] = {}

    def swap(properties: dict[str, Any]) -> None:
        uri = properties.get("CodeUri")
        if isinstance(uri, str) and not uri.startswith("s3://"):
            path = (base_dir / uri).resolve()
            # A Globals CodeUri every function overrides may name nothing: only code that exists is hashed.
            named = uri
            if path.exists():
                named = code_sha256(path).rstrip("=").replace("/", "_").replace("+", "-")
            key = f"local/{named.strip('/') or '.'}"
            local_code[key] = path
            properties["CodeUri"] = f"s3://{LOCAL_CODE_BUCKET}/{key}"

    function_globals = (document.get("Globals") or {}).get("Function")
    if isinstance(function_globals, dict):
        swap(function_globals)
    for resource in document["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            swap(resource.setdefault("Properties", {}))
    return local_code


def code_sha256(path: Path) -> str:
    """Lambda's CodeSha256 (base64 SHA-256) of a zip; of a folder, the same over its files, path by path.

    A folder is what `make local` runs from: `__pycache__` is left out, it is not code the author wrote.
    """
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
    elif path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(item.relative_to(path)).encode() + b"\0" + item.read_bytes() + b"\0")
    else:
        raise UserError(f"the function code {path} does not exist: check the template's CodeUri")
    return base64.b64encode(digest.digest()).decode()


def _run_sam_translator(document: dict[str, Any], values: dict[str, Any], region: str) -> dict[str, Any]:
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    try:
        transformed: dict[str, Any] = translator.translate(document, dict(values))
    except InvalidDocumentException as error:
        causes = "; ".join(str(cause) for cause in error.causes)
        raise UserError(f"the SAM transform rejected the template: {causes}") from error
    return transformed


# ---------------------------------------------------------------- intrinsic functions

AttributeLookup = Callable[[str, str], Any]


@dataclass
class Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If and friends against known values.

    `refs` maps logical ids (and parameters) to their Ref value; `attributes` maps
    (logical id, attribute) to a GetAtt value. An unknown name raises `UnresolvedReferenceError`.
    """

    parameters: dict[str, Any]
    conditions: dict[str, Any] = field(default_factory=dict)
    mappings: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    placeholders: dict[str, str] = field(
        default_factory=dict
    )  # logical id -> name, for resources not emulated

    @classmethod
    def for_template(cls, template: TransformedTemplate) -> Resolver:
        document = template.document
        return cls(
            parameters=template.parameters,
            conditions=document.get("Conditions") or {},
            mappings=document.get("Mappings") or {},
        )

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            raise UserError(f"the template uses condition {name!r} but does not define it")
        return bool(self.resolve(self.conditions[name]))

    def resolve(self, value: Any) -> Any:
        """Return `value` with every intrinsic function replaced by its result."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            function = self._functions().get(key)
            if function is not None:
                return function(argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": lambda arg: str(arg[0]).join(str(item) for item in self.resolve(arg[1])),
            "Fn::Select": lambda arg: self.resolve(arg[1])[int(self.resolve(arg[0]))],
            "Fn::Split": lambda arg: str(self.resolve(arg[1])).split(arg[0]),
            "Fn::If": lambda arg: self.resolve(arg[1] if self.condition(arg[0]) else arg[2]),
            "Fn::Equals": lambda arg: self.resolve(arg[0]) == self.resolve(arg[1]),
            "Fn::Not": lambda arg: not self.resolve(arg[0]),
            "Fn::And": lambda arg: all(self.resolve(item) for item in arg),
            "Fn::Or": lambda arg: any(self.resolve(item) for item in arg),
            "Condition": self.condition,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": self.resolve,
            "Fn::GetAZs": lambda _arg: [f"{self.parameters['AWS::Region']}{zone}" for zone in "abc"],
            "Fn::ToJsonString": lambda arg: json.dumps(self.resolve(arg)),
        }

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.placeholders:
            return self.placeholders[name]
        raise UnresolvedReferenceError(name)

    def _get_att(self, argument: Any) -> Any:
        name, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
        attribute = self.resolve(attribute)
        if (name, attribute) in self.attributes:
            return self.attributes[(name, attribute)]
        if name in self.placeholders:  # a resource that is not emulated still has a name to point at
            return (
                f"arn:aws:rehearsal:{self.parameters.get('AWS::Region', '')}:not-emulated:{name}/{attribute}"
            )
        raise UnresolvedReferenceError(f"{name}.{attribute}")

    def _find_in_map(self, argument: list[Any]) -> Any:
        map_name, top, second = (self.resolve(item) for item in argument)
        try:
            return self.mappings[map_name][top][second]
        except KeyError as error:
            raise UserError(f"Fn::FindInMap found nothing at {map_name}/{top}/{second}") from error

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        local = {key: self.resolve(item) for key, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and name.split(".", 1)[0] not in self.parameters:
                return str(self._get_att(name.split(".", 1)))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resource_included(self, resource: Mapping[str, Any]) -> bool:
        """False when the resource's `Condition` is false: CloudFormation would not create it."""
        condition = resource.get("Condition")
        return condition is None or self.condition(condition)
