"""Cold import time of each handler module, in a fresh interpreter, the way Lambda initialises it.

Each run is `python -c "import orders.handlers.X"` from a clean copy of `service/src` (no
`__pycache__`, bytecode writing off: the deployed zip is read-only and has no .pyc either), with
the function's Powertools settings; its wall time minus the median of a bare `python -c pass`
run in the same rounds (interleaved, so both see the same machine load) is the import's cost.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.figures import Baseline, Figure
from bench.processes import REPO, Processes, progress

HANDLERS = ("submit", "status", "presign", "worker", "attach", "sweeper", "traffic", "pre_traffic")
TARGET_MS = 150.0
# What the template and the runtime set before the handler module loads (docs/architecture.md).
_FUNCTION_ENVIRON = {
    "POWERTOOLS_SERVICE_NAME": "orders",
    "POWERTOOLS_METRICS_NAMESPACE": "OrderService",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def clean_source_copy(into: Path) -> Path:
    """A copy of service/src without bytecode caches, as the deployment zip holds it."""
    target = into / "src"
    shutil.copytree(REPO / "service" / "src", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def measure_imports(processes: Processes, runs: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as folder:
        code = clean_source_copy(Path(folder))
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env.update(_FUNCTION_ENVIRON, LAMBDA_TASK_ROOT=str(code))
        bare: list[float] = []
        raw: dict[str, list[float]] = {handler: [] for handler in HANDLERS}
        failures: dict[str, str] = {}
        for round_number in range(1, runs + 1):
            progress(f"imports: round {round_number}/{runs}")
            bare.append(processes.run([sys.executable, "-c", "pass"], cwd=code, env=env).seconds * 1000)
            for handler in HANDLERS:
                result = processes.run(
                    [sys.executable, "-c", f"import orders.handlers.{handler}"], cwd=code, env=env
                )
                raw[handler].append(result.seconds * 1000)
                if result.returncode != 0:
                    failures[handler] = result.last_line
    baseline = statistics.median(bare)
    figures = []
    for handler in HANDLERS:
        figure = Figure(
            name=f"import orders.handlers.{handler}",
            unit="ms",
            target=TARGET_MS,
            runs=[max(run - baseline, 0.0) for run in raw[handler]],
            baseline=Baseline("python -c pass", baseline),
            ratio=statistics.median(raw[handler]) / baseline,
            failed=failures.get(handler, ""),
        )
        figures.append(figure)
    figures[0].note = (
        f"Python {sys.version_info.major}.{sys.version_info.minor} here (Lambda runs 3.13); "
        "runs are wall time minus the bare-interpreter median; ratio is import run / bare run"
    )
    return figures
