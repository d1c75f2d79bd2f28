"""What a CodeBuild image offers to a buildspec's `runtime-versions`, and which of this machine's tools
stand in for the runtimes a build selects (ADR 0059).

The one home of the table. Source: github.com/aws/aws-codebuild-docker-images,
`ubuntu/standard/7.0/runtimes.yml` at commit 0c5eb16ca8ad8ca25bbd46b3090a2d9e60de8b84 (the versions
under `runtimes.<name>.versions`, read as text: YAML would read `3.10` as 3.1). The CodeBuild user
guide's "Runtime versions" page gives the three spellings (`3.13`, `3.x`, `latest`) and says "Not all
runtime versions are available on all images"; a version an image does not preinstall is a "custom
runtime version" that CodeBuild downloads during INSTALL, which offline cannot happen: it is refused.
"""

from __future__ import annotations

import re
import shutil

# Asks the machine's node for its version (B404).
import subprocess  # nosec B404
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rehearsal.base.errors import UserError
from rehearsal.runtime.sandbox import find_interpreter

# image -> runtime name -> preinstalled versions, newest first.
IMAGE_RUNTIMES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "aws/codebuild/standard:7.0": {
        "dotnet": ("10.0", "8.0", "6.0"),
        "golang": ("1.26", "1.25", "1.24", "1.23", "1.22", "1.21", "1.20"),
        "java": ("corretto25", "corretto21", "corretto17", "corretto11", "corretto8"),
        "nodejs": ("24", "22", "20", "18"),
        "php": ("8.5", "8.4", "8.3", "8.2"),
        "python": ("3.14", "3.13", "3.12", "3.11", "3.10", "3.9"),
        "ruby": ("4.0", "3.4", "3.3", "3.2", "3.1"),
    },
}
RUNTIMES_SOURCE = "aws-codebuild-docker-images ubuntu/standard/7.0/runtimes.yml @ 0c5eb16"


class RuntimeVersionError(UserError):
    """A `runtime-versions` entry the project's image cannot satisfy offline: one line says which."""


@dataclass(frozen=True, kw_only=True)
class SelectedRuntime:
    """One runtime a build selected, resolved to the image's version and this machine's stand-in."""

    name: str
    version: str  # the image's version the request resolves to ("3.13" for "3.x")
    bin_dir: Path | None  # put first on the build's PATH; None when this machine's default runs
    note: str | None  # set when this machine's tool is not the image's version


def resolve_version(image: str, name: str, requested: str) -> str:
    """`requested` ("3.13", "3.x", "latest") as a version `image` preinstalls, or one line why not."""
    offered = IMAGE_RUNTIMES.get(image)
    if offered is None:
        raise RuntimeVersionError(
            f"runtime-versions: image {image or '(none)'} is not in the runtime table "
            "(rehearsal/release/build_image.py): add its runtimes.yml versions, or drop runtime-versions"
        )
    versions = offered.get(name)
    if versions is None:
        raise RuntimeVersionError(
            f"runtime-versions: {image} has no runtime named {name}: use one of {', '.join(sorted(offered))}"
        )
    wanted = requested.strip()
    if wanted == "latest":
        return versions[0]
    if wanted.endswith(".x"):
        major = wanted.removesuffix(".x")
        matching = [v for v in versions if v.split(".")[0] == major]
        if matching:
            return matching[0]
    elif wanted in versions:
        return wanted
    raise RuntimeVersionError(
        f"runtime-versions: {name} {requested} is not preinstalled in {image} "
        f"(it has {', '.join(versions)}); CodeBuild would download it as a custom runtime version, "
        "which a rehearsal cannot: pick one of those"
    )


def select_runtimes(image: str, requested: Mapping[str, str], *, path: str | None) -> list[SelectedRuntime]:
    """Every requested runtime, checked against the image, with the tool that runs it here."""
    selected = []
    for name, wanted in requested.items():
        version = resolve_version(image, name, wanted)
        if name == "python":
            selected.append(_python(version, path))
        elif name == "nodejs":
            selected.append(_nodejs(version, path))
        else:
            selected.append(
                SelectedRuntime(
                    name=name,
                    version=version,
                    bin_dir=None,
                    note=f"{name} {version}: this machine's tools run",
                )
            )
    return selected


def _python(version: str, path: str | None) -> SelectedRuntime:
    interpreter = find_interpreter(f"python{version}", search_path=path)
    if interpreter.exact:
        return SelectedRuntime(name="python", version=version, bin_dir=interpreter.path.parent, note=None)
    return SelectedRuntime(
        name="python",
        version=version,
        bin_dir=None,
        note=f"python {version}: not on this machine; python{interpreter.version} runs",
    )


_NODE_VERSION = re.compile(r"^v(\d+)\.")


def _nodejs(version: str, path: str | None) -> SelectedRuntime:
    node = shutil.which("node", path=path)
    found = ""
    if node is not None:
        # The machine's own node, fixed arguments, no shell (B603).
        result = subprocess.run(  # nosec B603
            [node, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        match = _NODE_VERSION.match(result.stdout.strip())
        found = match.group(1) if match else ""
    if found == version:
        return SelectedRuntime(name="nodejs", version=version, bin_dir=None, note=None)
    return SelectedRuntime(
        name="nodejs",
        version=version,
        bin_dir=None,
        note=f"nodejs {version}: this machine's node {found or '(none on PATH)'} runs",
    )
