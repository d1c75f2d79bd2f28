"""The README's pipeline diagram is the pipeline that cdk.json's values synthesize (`make diagram`)."""

from __future__ import annotations

import difflib
from pathlib import Path

from rehearsal.cli.diagram import SERVICE_TEMPLATE, pipeline_diagram
from rehearsal.release.diagram import readme_diagram
from tests.rehearsal.conftest import REPOSITORY


def test_the_readmes_diagram_is_the_synthesized_pipeline(real_assembly: Path) -> None:
    synthesized = pipeline_diagram(real_assembly, REPOSITORY / SERVICE_TEMPLATE)
    in_readme = readme_diagram((REPOSITORY / "README.md").read_text(encoding="utf-8"))

    difference = "\n".join(
        difflib.unified_diff(
            in_readme.splitlines(), synthesized.splitlines(), "README.md", "synthesized", lineterm=""
        )
    )
    assert in_readme == synthesized, f"README.md's diagram is stale: run `make diagram`\n{difference}"
