"""Command line of `make bench`: which figures, how many runs, then the summary table.

`python -m bench [--only imports,zip,synth,gateway,local,release] [--runs N]`. Progress goes to
stderr, the table to stdout. Every process the bench starts is stopped before it exits, also on
Ctrl-C or an error. A bad flag ends with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NoReturn

from bench.figures import Figure, render_table
from bench.gateway import measure_gateway
from bench.imports import measure_imports
from bench.local import measure_local
from bench.package import measure_package
from bench.processes import Processes, progress
from bench.release import measure_release
from bench.synth import measure_synth

# name -> (default runs, measurement); the order is the table's.
Measure = Callable[[Processes, int], list[Figure]]
FIGURES: dict[str, tuple[int, Measure]] = {
    "imports": (7, measure_imports),
    "zip": (1, lambda processes, _runs: measure_package(processes)),  # sizes do not vary: one run
    "synth": (5, measure_synth),
    "gateway": (5, lambda _processes, runs: measure_gateway(runs)),
    "local": (3, measure_local),
    "release": (1, measure_release),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"bench: {message} (see python -m bench --help)\n")


def _figure_names(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in FIGURES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown figure {', '.join(unknown) or repr(value)}: choose from {','.join(FIGURES)}"
        )
    return names


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        type=_figure_names,
        default=list(FIGURES),
        metavar="NAMES",
        help=f"comma-separated figures to measure (default all: {','.join(FIGURES)})",
    )
    parser.add_argument(
        "--runs",
        type=_positive,
        default=None,
        metavar="N",
        help="runs behind every median (default per figure: imports 7, synth 5, gateway 5 batches "
        "of 40 requests, local 3, release 1)",
    )
    return parser


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _stop_on_signal(signum: int, _frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    processes = Processes()
    signal.signal(signal.SIGTERM, _stop_on_signal)
    figures: list[Figure] = []
    load_before = _load()
    started = time.monotonic()
    try:
        for name in args.only:
            default_runs, measure = FIGURES[name]
            runs = 1 if name == "zip" else args.runs or default_runs
            progress(
                f"{name}: measuring ({runs} run{'s' * (runs > 1)}), {time.monotonic() - started:.0f} s in"
            )
            try:
                figures.extend(measure(processes, runs))
            except Exception as error:  # one broken figure must not hide the others
                figures.append(
                    Figure(name=name, unit="", target=0.0, not_measured=f"{type(error).__name__}: {error}")
                )
    except KeyboardInterrupt:
        print("bench: interrupted: stopped every process it started", file=sys.stderr)
        return 130
    finally:
        processes.kill_all()
    print(f"bench: {time.monotonic() - started:.0f} s; {load_before} before, {_load()} after")
    print("Figures are from a shared, noisy machine: compare the ratios against the baselines first.")
    print(render_table(figures))
    return 0
