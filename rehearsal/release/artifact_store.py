"""The run's artifact store: each named pipeline artifact is a folder under `.rehearsal/runs/<id>/artifacts/`.

CodePipeline hands artifacts between actions as zips in its artifact bucket; offline they are folders.
An artifact is written once by the action that outputs it; later actions get a copy, so a build
that changes its workspace never changes the artifact another action reads.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from rehearsal.base.errors import UserError


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise UserError(f"artifact name {name!r} cannot be used as a folder name")
        return self.root / name

    def exists(self, name: str) -> bool:
        return self.path(name).is_dir()

    def create(self, name: str) -> Path:
        """A fresh, empty folder for the artifact `name` (replacing an earlier one of this run)."""
        folder = self.path(name)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder

    def require(self, name: str) -> Path:
        """The folder of an artifact an earlier action produced; a clear error when none did."""
        folder = self.path(name)
        if not folder.is_dir():
            raise UserError(f"input artifact {name} was not produced by any earlier action of this release")
        return folder

    def copy_to(self, name: str, destination: Path) -> Path:
        """Copy an artifact into a workspace (symlinks kept as links)."""
        shutil.copytree(self.require(name), destination, symlinks=True, dirs_exist_ok=True)
        return destination

    def file(self, reference: str) -> Path:
        """Resolve CodePipeline's `ArtifactName::path/in/artifact` to a file in the store."""
        name, separator, relative = reference.partition("::")
        if not separator or not relative:
            raise UserError(f"{reference!r} is not of the form ArtifactName::path/to/file")
        folder = self.require(name)
        path = (folder / relative).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            raise UserError(f"{relative} is not a file in artifact {name}")
        return path

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())


def copy_matching_files(
    source_dir: Path, base_directory: str, patterns: Sequence[str], destination: Path, *, discard_paths: bool
) -> int:
    """Copy the files `patterns` match under `base_directory` (CodeBuild's `files` globs); return how many."""
    base = (source_dir / base_directory).resolve()
    if not base.is_dir() or not base.is_relative_to(source_dir.resolve()):
        return 0
    copied = 0
    for path in sorted(set(_matching_files(base, patterns))):
        relative = path.relative_to(base)
        target = destination / (relative.name if discard_paths else relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied += 1
    return copied


def _matching_files(base: Path, patterns: Sequence[str]) -> Iterator[Path]:
    for pattern in patterns:
        cleaned = pattern.strip().removeprefix("./")
        if cleaned in ("", "."):
            continue
        for path in base.glob(cleaned):
            if path.is_file():
                yield path
            elif path.is_dir() and not cleaned.endswith("*"):
                # CodeBuild treats a directory named in `files` as "everything under it".
                yield from (p for p in path.rglob("*") if p.is_file())
