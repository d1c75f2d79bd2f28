"""Each function's zipped code, as `sam package` uploads it, measured on the local cloud's S3.

`sam package` runs against a moto server (`AWS_ENDPOINT_URL`) twice: on a clean copy of
`service/` (what a fresh clone in CodeBuild packages: the figure) and on the working tree as it
is (a note: any `__pycache__` lying in `service/src` ends up in the zip).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.figures import Figure
from bench.processes import REPO, Processes, progress

TARGET_KB = 100.0
_BUCKET = "bench-artifacts"


@dataclass(frozen=True)
class Package:
    """One uploaded code object and the functions whose CodeUri names it."""

    key: str
    size: int
    functions: tuple[str, ...]
    bytecode_bytes: int  # compressed size of __pycache__ entries inside it


def _packages(cloud: Any, processes: Processes, service_dir: Path, prefix: str, work: Path) -> list[Package]:
    output = work / f"{prefix}.json"
    env = {**os.environ, **cloud.environ(), "SAM_CLI_TELEMETRY": "0"}
    result = processes.run(
        [
            "sam",
            "package",
            "--template-file",
            str(service_dir / "template.yaml"),
            "--s3-bucket",
            _BUCKET,
            "--s3-prefix",
            prefix,
            "--output-template-file",
            str(output),
            "--use-json",
            "--no-progressbar",
        ],
        env=env,
        cwd=work,
    )
    if result.returncode != 0:
        raise RuntimeError(f"sam package failed: {result.last_line}")
    template = json.loads(output.read_text())
    by_key: dict[str, list[str]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        uri = (resource.get("Properties") or {}).get("CodeUri")
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(uri, str):
            by_key.setdefault(uri.removeprefix(f"s3://{_BUCKET}/"), []).append(logical_id)
    s3 = cloud.client("s3")
    packages = []
    for key, functions in sorted(by_key.items()):
        data: bytes = s3.get_object(Bucket=_BUCKET, Key=key)["Body"].read()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bytecode = sum(
                info.compress_size for info in archive.infolist() if "__pycache__" in info.filename
            )
        packages.append(Package(key, len(data), tuple(sorted(functions)), bytecode))
    return packages


def measure_package(processes: Processes) -> list[Figure]:
    from rehearsal.cloud.server import start_local_cloud  # noqa: PLC0415 - only this figure needs the local cloud

    with tempfile.TemporaryDirectory(prefix="bench-package-") as folder:
        work = Path(folder)
        clean = work / "service"
        shutil.copytree(REPO / "service", clean, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        progress("zip: starting the local cloud")
        cloud = start_local_cloud("local")
        try:
            cloud.client("s3").create_bucket(Bucket=_BUCKET)
            progress("zip: sam package (clean copy of service/)")
            packaged = _packages(cloud, processes, clean, "clean", work)
            progress("zip: sam package (working tree as it is)")
            as_is = _packages(cloud, processes, REPO / "service", "as-is", work)
        finally:
            cloud.stop()
    figures = []
    for package in packaged:
        count = len(package.functions)
        figures.append(
            Figure(
                name=f"zipped code, each of {count} function{'s' * (count > 1)}",
                unit="KB",
                target=TARGET_KB,
                runs=[package.size / 1000],
                note=f"one object {package.key} (sam package, clean tree) for "
                + ", ".join(package.functions),
            )
        )
    for package in as_is:
        if package.bytecode_bytes and figures:
            figures[-1].note += (
                f"; the working tree as it is packages {package.size / 1000:.1f} KB, "
                f"{package.bytecode_bytes / 1000:.1f} KB of it __pycache__ lying in service/src"
            )
    return figures
