"""The offline build host: each build gets a clean environment and its project's local cache (ADR 0058).

A CodeBuild build starts from its image: an empty HOME (`/root`), the image's tools, the project's
sources, nothing of an earlier build but what the project's cache restores. Offline each build gets:
- an empty HOME at one path per build host of the project (as `/root` is on AWS), an environment without
  this machine's virtualenvs, caches and Make state (no repository `.venv` on PATH, no `VIRTUAL_ENV`...);
- the project's `LOCAL` cache with mode `LOCAL_CUSTOM_CACHE`, as CodeBuild documents it: only
  directories, linked into the build (symlinks) before the sources arrive; a source item of the same
  name wins. Each `cache.paths` entry under `/root` (CodeBuild's HOME) lands under the build's HOME;
  a relative one under the source folder. The cache lives per project and build host in this machine's
  cache folder; builds of one project running at once use different hosts.
What is not emulated is returned as notes: other cache modes and types, paths elsewhere in the
image, and that offline the cache is always there (on AWS a local cache is best effort).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CODEBUILD_HOME = PurePosixPath("/root")  # the standard images run as root (their Dockerfile has no USER)
LOCAL_CUSTOM_CACHE = "LOCAL_CUSTOM_CACHE"
# Settings of this machine's shell that would reach past the build's own folders.
_HOST_ONLY = frozenset(
    {
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONUSERBASE",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "PIP_CACHE_DIR",
        "MYPY_CACHE_DIR",
        "REHEARSAL_CACHE",
        "MAKEFLAGS",
        "MAKELEVEL",
        "MFLAGS",
        "MAKEOVERRIDES",
        "VENV_HOME",
    }
)
_HOST_ONLY_PREFIXES = ("npm_config_", "npm_package_")
# The package registries' settings of this machine stand in for the image's own (its HOME's dotfiles).
REGISTRY_SETTINGS = (".npmrc", ".config/pip/pip.conf", ".pip/pip.conf")
_GLOB_TAIL = re.compile(r"(/\*\*)?(/\*)?/?$")


@dataclass(frozen=True, kw_only=True)
class ProjectCache:
    """A CodeBuild project's `Cache` property, as synthesized."""

    type: str = "NO_CACHE"  # NO_CACHE | LOCAL | S3
    modes: tuple[str, ...] = ()

    @property
    def custom(self) -> bool:
        return self.type == "LOCAL" and LOCAL_CUSTOM_CACHE in self.modes


def clean_environment(base: Mapping[str, str], *, home: Path, repo: Path) -> dict[str, str]:
    """`base` without this machine's per-user state: HOME is the build's own; PATH loses the repository's
    folders and any virtualenv's `bin` (the build installs its own tools)."""
    kept = {
        name: value
        for name, value in base.items()
        if name not in _HOST_ONLY and not name.startswith(_HOST_ONLY_PREFIXES)
    }
    kept["HOME"] = str(home)
    kept["PATH"] = os.pathsep.join(
        entry
        for entry in base.get("PATH", os.defpath).split(os.pathsep)
        if entry and _image_tool(entry, repo)
    )
    return kept


@contextlib.contextmanager
def build_host(project_store: Path) -> Iterator[Path]:
    """A free build host of the project: a folder holding its HOME, at one path for every build the host
    runs, as `/root` is on AWS (what a build installs there, such as a virtualenv's `#!` lines, names the
    same path in the next build), and the host's local cache. Builds of one project that run at once
    get different hosts, each with its own cache, as on AWS ("available to that build host only")."""
    project_store.mkdir(parents=True, exist_ok=True)
    for number in itertools.count(1):
        host = project_store / f"host-{number}"
        host.mkdir(exist_ok=True)
        with (host / "lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # busy: the next host
            yield host
            return


def prepare_home(home: Path, *, host_home: Path) -> None:
    """An empty HOME but for this machine's registry settings (where to find packages, not packages)."""
    if home.exists():
        shutil.rmtree(home)  # the last build's HOME; the cached folders are links, kept in the store
    home.mkdir(parents=True)
    for name in REGISTRY_SETTINGS:
        source = host_home / name
        if source.is_file():
            (home / name).parent.mkdir(parents=True, exist_ok=True)
            (home / name).write_bytes(source.read_bytes())


def _image_tool(entry: str, repo: Path) -> bool:
    folder = Path(entry).resolve()
    if folder == repo.resolve() or repo.resolve() in folder.parents:
        return False
    return not (folder.parent / "pyvenv.cfg").exists()


def cache_folders(paths: Sequence[str]) -> list[str]:
    """`cache.paths` as the directories they name: `/root/.npm/**/*` -> `/root/.npm`."""
    return [_GLOB_TAIL.sub("", path) or path for path in paths]


def restore_cache(
    cache: ProjectCache, paths: Sequence[str], *, store: Path, home: Path, source_dir: Path
) -> list[str]:
    """Link the project's cached directories into the build; returns what was not emulated, one line each."""
    if not paths:
        return []
    if not cache.custom:
        if cache.type == "S3":
            return ["cache (S3 cache type) is not emulated: every build starts without it"]
        kind = " ".join((cache.type, *cache.modes))
        return [
            f"cache.paths are not restored: the project's cache is {kind}; CodeBuild uses cache.paths "
            "only with a local custom or an S3 cache"
        ]
    notes = [
        "cache: the local custom cache is restored whenever this machine has it "
        "(on AWS only on the same build host, best effort)"
    ]
    for folder in cache_folders(paths):
        target = _in_build(folder, home=home, source_dir=source_dir)
        if target is None:
            notes.append(f"cache path {folder} is outside HOME and the source: not restored offline")
            continue
        if target.exists() or target.is_symlink():
            continue  # a source item of the same name wins over the cached one
        kept = store / folder.lstrip("/")
        kept.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(kept, target_is_directory=True)
    return notes


def _in_build(folder: str, *, home: Path, source_dir: Path) -> Path | None:
    path = PurePosixPath(folder)
    if not path.is_absolute():
        return source_dir / path
    if path == CODEBUILD_HOME or CODEBUILD_HOME in path.parents:
        return home / path.relative_to(CODEBUILD_HOME)
    return None
