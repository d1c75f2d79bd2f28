"""The buildspec interpreter follows CodeBuild's rules for phases, shells, variables and artifacts."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from rehearsal.release.buildspec import BuildContext, BuildResult, BuildspecError, parse_buildspec, run_build
from rehearsal.runtime.sandbox import find_interpreter


def build(tmp_path: Path, spec: dict[str, Any], **context: Any) -> tuple[BuildResult, str]:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    log = io.StringIO()
    arguments: dict[str, Any] = {
        "source_dir": source,
        "base_environment": {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        "overrides": {},
        "log": log,
        "work_dir": tmp_path / "work",
        "build_id": "Project:1",
        "build_number": 7,
        "source_version": "abc123",
    }
    arguments.update(context)
    result = run_build(parse_buildspec({"version": 0.2, **spec}), BuildContext(**arguments))
    return result, log.getvalue()


def phases(**commands: list[str]) -> dict[str, Any]:
    return {"phases": {name: {"commands": lines} for name, lines in commands.items()}}


def test_a_variable_exported_by_one_command_is_seen_by_later_phases_and_exported(tmp_path: Path) -> None:
    spec = {
        "env": {"exported-variables": ["VERSION"]},
        **phases(install=["export VERSION=1.2"], build=["echo v=$VERSION"]),
    }

    result, log = build(tmp_path, spec)

    assert result.succeeded
    assert "v=1.2" in log
    assert result.exported_variables == {"VERSION": "1.2"}


def test_a_directory_change_persists_across_commands_and_phases(tmp_path: Path) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    result, log = build(tmp_path, phases(install=["cd sub"], build=["pwd", "touch here"]))

    assert result.succeeded
    assert (tmp_path / "src" / "sub" / "here").exists()
    assert str(tmp_path / "src" / "sub") in log


def test_a_failing_command_stops_its_phase_and_its_finally_block_still_runs(tmp_path: Path) -> None:
    spec = {
        "phases": {"build": {"commands": ["echo first", "false", "echo never"], "finally": ["echo cleanup"]}}
    }

    result, log = build(tmp_path, spec)

    assert not result.succeeded
    assert (
        "first" in log and "cleanup" in log and "never" not in log.replace("Running command echo never", "")
    )
    assert result.message == "phase BUILD failed: command `false` exited with status 1"


def test_a_failed_build_phase_still_runs_post_build_with_build_succeeding_zero(tmp_path: Path) -> None:
    result, log = build(
        tmp_path, phases(build=["exit 3"], post_build=["echo succeeding=$CODEBUILD_BUILD_SUCCEEDING"])
    )

    assert not result.succeeded
    assert "succeeding=0" in log
    assert [p.name for p in result.phases] == ["build", "post_build"]
    assert result.phases[0].exit_status == 3


@pytest.mark.parametrize("failing_phase", ["install", "pre_build"])
def test_a_failed_install_or_pre_build_phase_skips_every_later_phase(
    tmp_path: Path, failing_phase: str
) -> None:
    commands = {
        "install": ["true"],
        "pre_build": ["true"],
        "build": ["echo building"],
        "post_build": ["echo post"],
    }
    commands[failing_phase] = ["false"]

    result, log = build(tmp_path, phases(**commands))

    assert not result.succeeded
    assert "building" not in log.replace("command echo building", "")
    assert result.phases[-1].name == failing_phase


def test_on_failure_continue_goes_on_to_the_next_phase_but_the_build_still_fails(tmp_path: Path) -> None:
    spec = {
        "phases": {
            "install": {"on-failure": "CONTINUE", "commands": ["false"]},
            "build": {"commands": ["echo built"]},
        }
    }

    result, log = build(tmp_path, spec)

    assert not result.succeeded
    assert "\nbuilt\n" in log


def test_on_failure_abort_in_build_skips_post_build(tmp_path: Path) -> None:
    spec = {
        "phases": {
            "build": {"on-failure": "ABORT", "commands": ["false"]},
            "post_build": {"commands": ["echo post"]},
        }
    }

    result, log = build(tmp_path, spec)

    assert not result.succeeded
    assert [p.name for p in result.phases] == ["build"]


def test_a_failing_command_fails_the_build_and_the_log_shows_its_output(tmp_path: Path) -> None:
    result, log = build(tmp_path, phases(build=["echo 'disk is full' >&2; exit 4"]))

    assert not result.succeeded
    assert "disk is full" in log
    assert "exit status 4" in log


def test_codebuild_variables_describe_the_build(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    command = (
        "echo $CODEBUILD_SRC_DIR $CODEBUILD_BUILD_ID $CODEBUILD_BUILD_NUMBER "
        "$CODEBUILD_RESOLVED_SOURCE_VERSION $CODEBUILD_SRC_DIR_Tests $CODEBUILD_INITIATOR"
    )
    result, log = build(tmp_path, phases(build=[command]), secondary_sources={"Tests": other})

    assert f"{tmp_path / 'src'} Project:1 7 abc123 {other} rehearsal" in log


def test_action_variables_win_over_project_variables_which_win_over_the_buildspec(tmp_path: Path) -> None:
    spec = {"env": {"variables": {"A": "spec", "B": "spec", "C": True}}, **phases(build=["echo $A $B $C"])}

    result, log = build(tmp_path, spec, overrides={"A": "action"})

    assert "action spec true" in log


def test_artifacts_honour_base_directory_discard_paths_and_secondary_identifiers(tmp_path: Path) -> None:
    spec = {
        **phases(
            build=[
                "mkdir -p out/a/b docs",
                "echo 1 > out/a/b/one.txt",
                "echo 2 > out/top.txt",
                "echo d > docs/r.md",
            ]
        ),
        "artifacts": {
            "files": ["**/*"],
            "base-directory": "out",
            "secondary-artifacts": {"Docs": {"files": ["docs"], "discard-paths": "yes"}},
        },
    }
    outputs = {"Primary": tmp_path / "a1", "Docs": tmp_path / "a2"}

    result, _ = build(tmp_path, spec, output_artifacts=outputs)

    assert result.succeeded
    assert (tmp_path / "a1" / "a" / "b" / "one.txt").read_text() == "1\n"
    assert (tmp_path / "a1" / "top.txt").is_file()
    assert (tmp_path / "a2" / "r.md").is_file()


def test_an_artifact_that_matches_no_file_fails_an_otherwise_good_build(tmp_path: Path) -> None:
    spec = {**phases(build=["true"]), "artifacts": {"files": ["missing/*.zip"]}}

    result, log = build(tmp_path, spec, output_artifacts={"Out": tmp_path / "out"})

    assert not result.succeeded
    assert "no matching artifact paths found for Out" in result.message


def test_an_output_artifact_without_a_definition_fails_the_build(tmp_path: Path) -> None:
    result, _ = build(tmp_path, phases(build=["true"]), output_artifacts={"Out": tmp_path / "out"})

    assert "output artifact Out has no definition" in result.message


def test_report_files_are_collected_into_the_run_record(tmp_path: Path) -> None:
    spec = {
        **phases(build=["mkdir -p reports", "echo '<testsuite/>' > reports/junit.xml"]),
        "reports": {"arn:aws:codebuild:group/unit": {"files": ["junit.xml"], "base-directory": "reports"}},
    }

    result, log = build(tmp_path, spec, reports_dir=tmp_path / "record")

    assert (tmp_path / "record" / "unit" / "junit.xml").is_file()
    assert "1 file(s) collected" in log


def test_parameter_store_values_cannot_be_read_offline_unless_the_shell_stands_in(tmp_path: Path) -> None:
    spec = {"env": {"parameter-store": {"TOKEN": "/team/token"}}, **phases(build=["echo token=$TOKEN"])}

    missing, _ = build(tmp_path, spec)
    given, log = build(tmp_path, spec, base_environment={"PATH": "/usr/bin:/bin", "TOKEN": "local"})

    assert not missing.succeeded
    assert "env.parameter-store TOKEN (/team/token) cannot be read offline: export TOKEN" in missing.message
    assert given.succeeded and "token=local" in log


def test_what_cannot_be_emulated_offline_is_said_in_notes(tmp_path: Path) -> None:
    spec = {
        "env": {"shell": "pwsh", "git-credential-helper": "yes"},
        "cache": {"paths": ["/root/.cache/pip/**/*"], "key": "pip-v1"},
        "phases": {"install": {"run-as": "root", "commands": ["true"]}},
    }

    result, log = build(tmp_path, spec)

    notes = " | ".join(result.notes)
    assert "cache.key is ignored offline" in notes
    assert "pwsh is not available offline" in notes
    assert "run-as is ignored" in notes
    assert "git-credential-helper is ignored" in notes


def test_cache_paths_are_read_for_the_runner(tmp_path: Path) -> None:
    spec = parse_buildspec({"version": 0.2, "cache": {"paths": ["/root/.npm/**/*", "vendor"]}})

    assert spec.cache_paths == ("/root/.npm/**/*", "vendor")


def test_a_runtime_version_the_image_lacks_fails_install_with_one_line(tmp_path: Path) -> None:
    spec = {"phases": {"install": {"runtime-versions": {"nodejs": 16}, "commands": ["echo installed"]}}}

    result, log = build(tmp_path, spec, image="aws/codebuild/standard:7.0")

    assert not result.succeeded
    assert result.message == (
        "phase INSTALL failed: runtime-versions: nodejs 16 is not preinstalled in aws/codebuild/standard:7.0 "
        "(it has 24, 22, 20, 18); CodeBuild would download it as a custom runtime version, which a "
        "rehearsal cannot: pick one of those"
    )
    assert "Running command echo installed" not in log


def test_runtime_versions_on_an_image_without_a_runtime_table_fail_closed(tmp_path: Path) -> None:
    spec = {"phases": {"install": {"runtime-versions": {"python": "3.13"}, "commands": ["true"]}}}

    result, _ = build(tmp_path, spec, image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/builder:1")

    assert not result.succeeded
    assert "is not in the runtime table (rehearsal/release/build_image.py)" in result.message


def test_a_selected_python_version_this_machine_has_comes_first_on_path(tmp_path: Path) -> None:
    machine = find_interpreter("python3.13")
    spec = {
        "phases": {"install": {"runtime-versions": {"python": "3.13"}, "commands": ['echo "path=$PATH"']}}
    }

    result, log = build(tmp_path, spec, image="aws/codebuild/standard:7.0")

    assert result.succeeded, result.message
    if machine.exact:
        assert f"path={machine.path.parent}:/usr/bin:/bin" in log
        assert not any("runtime-versions" in note for note in result.notes)
    else:  # the machine's fallback runs, and the run says so
        assert "path=/usr/bin:/bin" in log
        assert (
            f"runtime-versions python 3.13: not on this machine; python{machine.version} runs" in result.notes
        )


def test_runtime_versions_outside_the_install_phase_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildspecError, match="belongs to phases.install"):
        parse_buildspec({"version": 0.2, "phases": {"build": {"runtime-versions": {"python": "3.13"}}}})


def test_a_command_that_ends_the_shell_fails_its_phase_with_its_status(tmp_path: Path) -> None:
    result, _ = build(tmp_path, {"phases": {"build": {"commands": ["exit 0", "echo unreachable"]}}})
    failed, _ = build(tmp_path, {"phases": {"build": {"commands": ["kill -9 $$"]}}})

    assert result.succeeded
    assert not failed.succeeded


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("version: 0.1\nphases: {}", "version 0.1 is not supported"),
        ("- a list", "not a mapping"),
        ({"version": "0.2", "phases": {"build": {"on-failure": "RETRY"}}}, "on-failure is RETRY"),
        ({"version": "0.2", "env": []}, "env must be a mapping"),
    ],
)
def test_a_buildspec_codebuild_would_reject_is_refused_with_the_key_named(
    document: Any, message: str
) -> None:
    with pytest.raises(BuildspecError, match=message):
        parse_buildspec(document)


def test_finally_still_runs_when_a_command_ends_the_shell(tmp_path: Path) -> None:
    spec = {"phases": {"build": {"commands": ["exit 5"], "finally": ["echo cleaned up"]}}}

    result, log = build(tmp_path, spec)

    assert not result.succeeded
    assert "\ncleaned up\n" in log
    assert result.message == "phase BUILD failed: command `exit 5` exited with status 5"
