"""`make synth` against a minimal CDK Pipelines app (bench/minimal_pipeline.py), in the same rounds.

Both go through the same CDK CLI and Python; the minimal app has a source, a synth step, two
stages and an approval, and no cdk-nag. The figure is the ratio of the two per round (target:
at most 1.3x); absolute seconds drift with the machine's load and are only reported. Each synth
writes to a temporary folder, so the shared `cdk.out/` is never touched. One unmeasured round
warms the caches first.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from bench.figures import Figure
from bench.processes import Completed, Processes, progress

TARGET_RATIO = 1.3


def _make_synth(processes: Processes, output: Path) -> Completed:
    return processes.run(["make", "synth", f"CDK_ARGS=--output {output}"], env=os.environ, timeout=180)


def _minimal_synth(processes: Processes, output: Path) -> Completed:
    # `make synth` puts the venv and node_modules on PATH; the same `cdk` and `python` run here.
    return processes.run(
        ["make", "synth", f"CDK_ARGS=--app 'python -m bench.minimal_pipeline' --output {output}"],
        env=os.environ,
        timeout=180,
    )


def _failure(result: Completed, what: str) -> str:
    return f"{what} exited {result.returncode}: {result.last_line}" if result.returncode else ""


def measure_synth(processes: Processes, runs: int) -> list[Figure]:
    ours: list[float] = []
    minimal: list[float] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as folder:
        ours_out, minimal_out = Path(folder) / "ours", Path(folder) / "minimal"
        progress("synth: warm-up round")
        _make_synth(processes, ours_out)
        _minimal_synth(processes, minimal_out)
        for round_number in range(1, runs + 1):
            progress(f"synth: round {round_number}/{runs}")
            result = _make_synth(processes, ours_out)
            ours.append(result.seconds)
            failures.append(_failure(result, "make synth"))
            result = _minimal_synth(processes, minimal_out)
            minimal.append(result.seconds)
            failures.append(_failure(result, "the minimal CDK Pipelines app"))
    figure = Figure(
        name="make synth / minimal CDK Pipelines app",
        unit="x",
        target=TARGET_RATIO,
        runs=[mine / reference for mine, reference in zip(ours, minimal, strict=True)],
        failed=next((failure for failure in failures if failure), ""),
        note=(
            f"per-round ratio; medians: make synth {statistics.median(ours):.2f} s (cdk CLI, python app, "
            f"cdk-nag), minimal app {statistics.median(minimal):.2f} s (source, synth step, two stages, "
            "approval; no cdk-nag)"
        ),
    )
    return [figure]
