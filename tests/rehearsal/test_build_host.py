"""Offline builds run as CodeBuild runs them: a clean environment, the project's local cache, the image's
runtime versions, and TimeoutInMinutes with compressed waits counted at full length."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from rehearsal.release.build_host import (
    ProjectCache,
    build_host,
    cache_folders,
    clean_environment,
    restore_cache,
)
from rehearsal.release.build_image import RuntimeVersionError, resolve_version
from rehearsal.release.buildspec import BuildContext, parse_buildspec, real_timeout_seconds, run_build

IMAGE = "aws/codebuild/standard:7.0"
CUSTOM = ProjectCache(type="LOCAL", modes=("LOCAL_CUSTOM_CACHE",))


def test_the_build_environment_keeps_nothing_of_this_machines_virtualenvs_or_make(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    venv = tmp_path / "elsewhere" / "venv"
    (repo / ".venv" / "bin").mkdir(parents=True)
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    base = {
        "PATH": f"{repo}/.venv/bin:{repo}/node_modules/.bin:{venv}/bin:/usr/local/bin:/usr/bin",
        "VIRTUAL_ENV": str(venv),
        "MAKEFLAGS": "-j2",
        "MAKELEVEL": "1",
        "MYPY_CACHE_DIR": "/root/.cache/mypy/x",
        "XDG_CACHE_HOME": "/root/.cache",
        "npm_config_cache": "/root/.npm",
        "PIP_FIND_LINKS": "/opt/wheels",
        "HOME": "/root",
    }

    environment = clean_environment(base, home=tmp_path / "home", repo=repo)

    assert environment == {
        "PATH": "/usr/local/bin:/usr/bin",
        "PIP_FIND_LINKS": "/opt/wheels",
        "HOME": str(tmp_path / "home"),
    }


def test_cache_paths_name_directories() -> None:
    assert cache_folders(["/root/.npm/**/*", "/root/.cache/pip/*", "vendor/", "/root/.m2"]) == [
        "/root/.npm",
        "/root/.cache/pip",
        "vendor",
        "/root/.m2",
    ]


def test_a_local_custom_cache_links_home_and_source_folders_to_the_projects_store(tmp_path: Path) -> None:
    home, source, store = tmp_path / "home", tmp_path / "src", tmp_path / "store"
    source.mkdir()

    notes = restore_cache(
        CUSTOM, ["/root/.cache/pip/**/*", "vendor/**/*"], store=store, home=home, source_dir=source
    )
    (home / ".cache" / "pip" / "wheel").write_text("kept")

    assert (home / ".cache" / "pip").resolve() == store / "root" / ".cache" / "pip"
    assert (source / "vendor").resolve() == store / "vendor"
    assert (store / "root" / ".cache" / "pip" / "wheel").read_text() == "kept"
    assert notes == [
        "cache: the local custom cache is restored whenever this machine has it "
        "(on AWS only on the same build host, best effort)"
    ]


def test_a_source_item_wins_over_a_cached_folder_of_the_same_name(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "vendor").mkdir(parents=True)

    restore_cache(
        CUSTOM, ["vendor/**/*"], store=tmp_path / "store", home=tmp_path / "home", source_dir=source
    )

    assert not (source / "vendor").is_symlink()


def test_a_cache_path_elsewhere_in_the_image_is_named_as_not_restored(tmp_path: Path) -> None:
    notes = restore_cache(
        CUSTOM, ["/usr/local/lib/**/*"], store=tmp_path / "s", home=tmp_path / "h", source_dir=tmp_path
    )

    assert notes[-1] == "cache path /usr/local/lib is outside HOME and the source: not restored offline"
    assert not (tmp_path / "s").exists()


def test_without_a_local_custom_cache_the_buildspec_cache_paths_are_not_restored(tmp_path: Path) -> None:
    notes = restore_cache(
        ProjectCache(), ["/root/.npm/**/*"], store=tmp_path / "s", home=tmp_path / "h", source_dir=tmp_path
    )

    assert notes == [
        "cache.paths are not restored: the project's cache is NO_CACHE; CodeBuild uses cache.paths "
        "only with a local custom or an S3 cache"
    ]
    assert not (tmp_path / "h").exists()


@pytest.mark.parametrize(
    ("name", "requested", "version"),
    [
        ("python", "3.13", "3.13"),
        ("python", "3.x", "3.14"),
        ("nodejs", "latest", "24"),
        ("python", "3.10", "3.10"),
    ],
)
def test_a_runtime_version_resolves_to_one_the_image_preinstalls(
    name: str, requested: str, version: str
) -> None:
    assert resolve_version(IMAGE, name, requested) == version


def test_a_runtime_the_image_does_not_know_is_refused_naming_the_ones_it_has() -> None:
    with pytest.raises(RuntimeVersionError, match="has no runtime named rust: use one of dotnet, golang"):
        resolve_version(IMAGE, "rust", "1.80")


def test_the_timeout_counts_a_compressed_wait_at_its_full_length() -> None:
    def context(timeout_minutes: float, waits: float) -> BuildContext:
        return BuildContext(
            source_dir=Path("."),
            base_environment={},
            overrides={},
            log=io.StringIO(),
            work_dir=Path("."),
            build_id="p:1",
            build_number=1,
            source_version="c",
            timeout_seconds=timeout_minutes * 60,
            compressed_minutes=waits,
            minute_seconds=1.0,
        )

    # 25 minutes with a 5-minute bake: 20 real minutes for the commands, 5 seconds for the bake.
    assert real_timeout_seconds(context(25, 5)) == 20 * 60 + 5
    # A bake longer than the timeout leaves the commands no time: on AWS the bake times out.
    assert real_timeout_seconds(context(10, 15)) == 10
    assert real_timeout_seconds(context(30, 0)) == 30 * 60


def test_a_build_whose_bake_outlasts_its_timeout_times_out_saying_so(tmp_path: Path) -> None:
    spec = parse_buildspec({"version": "0.2", "phases": {"build": {"commands": ["sleep 30", "echo never"]}}})
    context = BuildContext(
        source_dir=tmp_path,
        base_environment={"PATH": "/usr/bin:/bin"},
        overrides={},
        log=io.StringIO(),
        work_dir=tmp_path / "tmp",
        build_id="p:1",
        build_number=1,
        source_version="c",
        timeout_seconds=60,
        compressed_minutes=2,
        minute_seconds=0.5,
    )
    started = time.monotonic()

    result = run_build(spec, context)

    assert not result.succeeded
    assert result.message == (
        "build timed out in phase BUILD after 1 minutes (TimeoutInMinutes), "
        "its 2-minute bake counted at full length"
    )
    assert time.monotonic() - started < 10


def test_builds_of_one_project_at_once_get_different_hosts_and_a_later_one_the_first(tmp_path: Path) -> None:
    with build_host(tmp_path / "Project") as first, build_host(tmp_path / "Project") as second:
        assert (first.name, second.name) == ("host-1", "host-2")
    with build_host(tmp_path / "Project") as later:
        assert later == first
