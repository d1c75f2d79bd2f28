"""Helpers for the deployer tests: `sam package` by hand into the local artifact bucket, deploy requests."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rehearsal.cloud.template import load_template
from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.release.deploy_port import DeployRequest
from tests.rehearsal.permission_faults import RemovedPermission

REPO = Path(__file__).resolve().parents[2]
BUCKET = "artifactsbucket88671897"
# What the pipeline's deploy actions give (cdk.out: CAPABILITY_AUTO_EXPAND,CAPABILITY_IAM).
PIPELINE_CAPABILITIES = ("CAPABILITY_AUTO_EXPAND", "CAPABILITY_IAM")


def _zip(source: Path, patch: tuple[str, str, str] | None = None) -> bytes:
    """The package's zip; entries dated alike, so the same code makes the same bytes (one CodeSha256)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(source.rglob("*.py")) + sorted(source.rglob("*.json")):
            if "__pycache__" in path.parts:
                continue
            name = str(path.relative_to(source))
            text = path.read_text(encoding="utf-8")
            if patch and name == patch[0]:
                assert patch[1] in text
                text = text.replace(patch[1], patch[2])
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), text)
    return buffer.getvalue()


class Packager:
    """`sam package` by hand: a zip in the artifact bucket named by its content (uploaded once, as
    `sam package` skips a key that exists), the template's CodeUris pointing at it."""

    def __init__(self, deployer: LocalDeployer, root: Path) -> None:
        deployer.build_environment()
        assert deployer.tooling is not None
        self.s3 = deployer.tooling.client("s3")
        self.s3.create_bucket(Bucket=BUCKET)
        self.root = root
        self.count = 0

    def package(
        self,
        patch: tuple[str, str, str] | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
        *,
        removed: RemovedPermission | None = None,
    ) -> Path:
        """The packaged template (with `removed` taken out of the source template's policies and
        `edit` applied to it first, if given)."""
        self.count += 1
        body = _zip(REPO / "service" / "src", patch)
        key = f"packages/{hashlib.md5(body, usedforsecurity=False).hexdigest()}"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        source = REPO / "service" / "template.yaml"
        if removed is not None:
            source = self.root / f"template-{self.count}.yaml"
            text = (REPO / "service" / "template.yaml").read_text(encoding="utf-8")
            source.write_text(removed.apply(text), encoding="utf-8")
        document: dict[str, Any] = load_template(source)
        if edit is not None:
            edit(document)
        for resource in document["Resources"].values():
            if resource["Type"] == "AWS::Serverless::Function":
                resource["Properties"]["CodeUri"] = f"s3://{BUCKET}/{key}"
        path = self.root / f"packaged-{self.count}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        return path


def deploy_request(
    template: Path,
    commit: str,
    deployment_type: str,
    capabilities: tuple[str, ...] = PIPELINE_CAPABILITIES,
) -> DeployRequest:
    return DeployRequest(
        environment="staging",
        stack_name="orders-staging",
        template=template,
        artifacts={},
        parameters={"Environment": "staging", "DeploymentType": deployment_type},
        capabilities=capabilities,
        commit=commit,
        log=io.StringIO(),
    )
