"""Before the packaged template goes anywhere: the pinned Powertools layer exists in each target region.

The service template resolves its Powertools layer from a public SSM parameter
(`/aws/service/powertools/python/<arch>/<python>/<version>`); a release once shipped without
it, and CloudFormation would then fail the staging deploy (see ADR 0013). `make package` runs
this in the Build: one line and a non-zero exit when a parameter is missing. Offline (the
rehearsal's local cloud, `AWS_ENDPOINT_URL` set) there are no public parameters to read: it says
so and passes.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.config import ConfigError, PipelineConfig

ROOT = Path(__file__).resolve().parent.parent
SERVICE_TEMPLATE = ROOT / "service" / "template.yaml"
_POWERTOOLS_PARAMETER = re.compile(r"\{\{resolve:ssm:(/aws/service/powertools/[^}:]+)\}\}")

# (parameter name, region) -> does it exist there?
Lookup = Callable[[str, str], bool]


def pinned_parameters(template_text: str) -> list[str]:
    """The Powertools SSM parameters the template resolves, in order, without repeats."""
    return list(dict.fromkeys(_POWERTOOLS_PARAMETER.findall(template_text)))


def parameter_exists(name: str, region: str) -> bool:
    """Ask SSM in `region` (public parameters are readable from every account)."""
    import boto3  # noqa: PLC0415 - only the Build's package step talks to SSM
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        boto3.client("ssm", region_name=region).get_parameter(Name=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return False
        raise
    return True


def missing_parameters(names: Iterable[str], regions: Iterable[str], lookup: Lookup) -> list[tuple[str, str]]:
    return [(name, region) for region in regions for name in names if not lookup(name, region)]


def main(*, lookup: Lookup = parameter_exists, root: Path = ROOT) -> int:
    if os.environ.get("AWS_ENDPOINT_URL"):
        print("Powertools layer check skipped offline: the local cloud has no public SSM parameters")
        return 0
    try:
        config = PipelineConfig.from_context(json.loads((root / "cdk.json").read_text())["context"])
    except ConfigError as error:
        print(f"cdk.json: {error}", file=sys.stderr)
        return 2
    names = pinned_parameters((root / "service" / "template.yaml").read_text())
    regions = sorted({environment.region for environment in config.environments})
    missing = missing_parameters(names, regions, lookup)
    if missing:
        name, region = missing[0]
        print(
            f"service/template.yaml: Powertools layer parameter {name} does not exist in {region}: "
            "pin a Powertools version whose parameter is published there",
            file=sys.stderr,
        )
        return 2
    print(f"Powertools layer parameters found in {', '.join(regions)}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
