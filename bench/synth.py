"""`make synth` with a warm cache, against a bare `python -c "import aws_cdk"` in the same rounds.

Synth writes to a temporary folder (`CDK_ARGS=--output ...`) so that the shared `cdk.out/`, which
other tools read, is never touched. One unmeasured run warms the caches first.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile

from bench.figures import Baseline, Figure
from bench.processes import Completed, Processes, progress

TARGET_S = 4.0


def _synth(processes: Processes, output: str) -> Completed:
    return processes.run(["make", "synth", f"CDK_ARGS=--output {output}"], env=os.environ, timeout=180)


def measure_synth(processes: Processes, runs: int) -> list[Figure]:
    synth_runs: list[float] = []
    import_runs: list[float] = []
    failure = ""
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as output:
        progress("synth: warm-up run")
        _synth(processes, output)
        for round_number in range(1, runs + 1):
            progress(f"synth: run {round_number}/{runs}")
            result = _synth(processes, output)
            synth_runs.append(result.seconds)
            if result.returncode != 0:
                failure = f"make synth exited {result.returncode}: {result.last_line}"
            import_runs.append(processes.run([sys.executable, "-c", "import aws_cdk"]).seconds)
    baseline = statistics.median(import_runs)
    figure = Figure(
        name="make synth (warm)",
        unit="s",
        target=TARGET_S,
        runs=synth_runs,
        baseline=Baseline('python -c "import aws_cdk"', baseline),
        ratio=statistics.median(synth_runs) / baseline,
        failed=failure,
        note="wall time of `make synth` (cdk CLI, python app, cdk-nag), output to a temp folder",
    )
    return [figure]
