"""The Build checks that the pinned Powertools layer parameter exists in each target region."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from moto import mock_aws

from pipeline import layer_check
from tests.infra.conftest import FIXTURE_CONTEXT, REGION, ROOT


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cdk.json with the fixture's values beside the real service template; not offline."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    (tmp_path / "service").mkdir()
    shutil.copy(ROOT / "service" / "template.yaml", tmp_path / "service" / "template.yaml")
    (tmp_path / "cdk.json").write_text(json.dumps({"context": FIXTURE_CONTEXT}))
    return tmp_path


def test_the_service_template_pins_one_powertools_layer_parameter() -> None:
    (name,) = layer_check.pinned_parameters((ROOT / "service" / "template.yaml").read_text())
    assert name.startswith("/aws/service/powertools/python/")


def test_a_parameter_missing_in_a_target_region_stops_the_build_with_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert layer_check.main(lookup=lambda name, region: False, root=project) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"does not exist in {REGION}: pin a Powertools version" in line


def test_parameters_present_in_every_target_region_pass(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[tuple[str, str]] = []
    assert layer_check.main(lookup=lambda name, region: not asked.append((name, region)), root=project) == 0
    assert {region for _, region in asked} == {REGION}
    assert "found in" in capsys.readouterr().out


def test_offline_the_check_says_it_was_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert layer_check.main(lookup=lambda name, region: False) == 0
    assert "skipped offline" in capsys.readouterr().out


@mock_aws
def test_ssm_answering_parameter_not_found_means_missing() -> None:
    assert not layer_check.parameter_exists("/aws/service/powertools/python/arm64/python3.13/0.0.0", REGION)


def test_make_package_encrypts_with_the_artifact_key_and_uploads_every_time() -> None:
    dry_run = subprocess.run(  # make prints its recipes, runs nothing
        ["make", "-n", "package", "ARTIFACT_BUCKET=bucket", "ARTIFACT_KEY_ID=key"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    command = " ".join(dry_run.stdout.split("\\\n"))
    assert '--kms-key-id "$ARTIFACT_KEY_ID"' in command
    assert "--force-upload" in command
    assert "python -m pipeline.layer_check" in command
