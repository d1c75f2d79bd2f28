"""`rehearsal diagram`: the synthesized pipeline as Mermaid (`make diagram`), and a run's diagram.

`diagram` reads a cloud assembly through the pipeline model and prints the flowchart; `--readme`
also writes it between the README's markers. `status --diagram` and `release --diagram` print the
latest run the same way, each action coloured by its state in the run's summary.json.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rehearsal.base.errors import UserError
from rehearsal.base.layout import StateLayout
from rehearsal.cloud.template import load_template
from rehearsal.release.diagram import RunStates, render, with_readme_diagram
from rehearsal.release.pipeline_model import load_pipeline

# The service template the Build packages (`make package`); its functions' DeploymentPreference
# says which CodeDeploy type each deploy action's parameters pick.
SERVICE_TEMPLATE = Path("service/template.yaml")


def register(commands: Any) -> None:
    diagram = commands.add_parser("diagram", help="print the synthesized pipeline as a Mermaid flowchart")
    diagram.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), help="the cloud assembly to read")
    diagram.add_argument(
        "--template",
        type=Path,
        default=SERVICE_TEMPLATE,
        help="the service template the deploy actions deploy",
    )
    diagram.add_argument(
        "--readme", type=Path, default=None, help="also write it between this file's markers"
    )
    diagram.set_defaults(run=run_diagram)


def run_diagram(args: argparse.Namespace) -> int:
    text = pipeline_diagram(args.cdk_out, args.template)
    print(text, end="")
    if args.readme is not None:
        readme: Path = args.readme
        if not readme.is_file():
            raise UserError(f"{readme} does not exist: give the README that carries the diagram")
        before = readme.read_text(encoding="utf-8")
        after = with_readme_diagram(before, text)
        if after != before:
            readme.write_text(after, encoding="utf-8")
        print(f"{readme}: diagram {'updated' if after != before else 'already up to date'}")
    return 0


def pipeline_diagram(cdk_out: Path, template: Path) -> str:
    """The pipeline of `cdk_out` as Mermaid, with canaries from `template` (skipped when it is absent)."""
    service_template = load_template(template) if template.is_file() else None
    return render(load_pipeline(cdk_out), service_template=service_template)


def run_diagram_of(repo: Path, summary: Mapping[str, Any]) -> str:
    """A run as Mermaid: the pipeline deployed offline, each action in its state from `summary`."""
    assembly = StateLayout.of_repo(repo).pipeline_assembly
    if not (assembly / "manifest.json").is_file():
        raise UserError("no pipeline has been deployed offline yet: run `make release` first")
    model = load_pipeline(assembly)
    ran = (summary.get("pipeline") or {}).get("stack")
    if ran and ran != model.stack_name:
        raise UserError(
            f"the latest run released pipeline {ran}, but {model.stack_name} is deployed offline now: "
            "run `make release` again"
        )
    template = repo / SERVICE_TEMPLATE
    service_template = load_template(template) if template.is_file() else None
    return render(model, service_template=service_template, states=RunStates.from_summary(summary))
