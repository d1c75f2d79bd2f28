"""What a measurement produces (a `Figure`) and the summary table that ends a run.

A figure is a median over runs, compared with its target (always "at most"), optionally with a
baseline measured in the same invocation, because on a shared machine absolute numbers drift
from one minute to the next while ratios drift much less.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Baseline:
    """A reference measured alongside the figure, e.g. a bare interpreter for an import time."""

    label: str
    median: float


@dataclass
class Figure:
    """One row of the table: a median over runs against a target, or the reason it was not measured."""

    name: str
    unit: str
    target: float
    runs: list[float] = field(default_factory=list)
    baseline: Baseline | None = None
    ratio: float | None = None  # figure's raw median over the baseline's, when that ratio means something
    note: str = ""
    failed: str = ""  # set when the measured command itself failed: its time is then not a valid figure
    not_measured: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None

    @property
    def verdict(self) -> str:
        median = self.median
        if self.not_measured or median is None:
            return "not measured"
        if self.failed:
            return "FAILED"
        return "meets" if median <= self.target else "misses"


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def _number(value: float, unit: str) -> str:
    if unit == "KB":
        return f"{value:.1f}"
    return f"{value:.0f}" if unit == "ms" and value >= 100 else f"{value:.2f}"


def render_table(figures: Sequence[Figure]) -> str:
    """The summary table: figure, median, target, verdict, then the runs, baseline and notes under it."""
    headers = ("figure", "median", "target", "verdict")
    rows: list[tuple[str, str, str, str]] = []
    details: list[list[str]] = []
    for figure in figures:
        median = figure.median
        shown = (
            "-" if median is None or figure.not_measured else f"{_number(median, figure.unit)} {figure.unit}"
        )
        rows.append(
            (figure.name, shown, f"<= {_number(figure.target, figure.unit)} {figure.unit}", figure.verdict)
        )
        lines: list[str] = []
        if figure.not_measured:
            lines.append(f"not measured: {figure.not_measured}")
        else:
            if len(figure.runs) > 1:
                lines.append("runs: " + ", ".join(_number(run, figure.unit) for run in figure.runs))
            if figure.baseline is not None:
                ratio = "" if figure.ratio is None else f"; ratio {figure.ratio:.2f}x"
                lines.append(
                    f"baseline {figure.baseline.label}: "
                    f"{_number(figure.baseline.median, figure.unit)} {figure.unit}{ratio}"
                )
            if figure.failed:
                lines.append(f"FAILED: {figure.failed}")
        if figure.note:
            lines.append(figure.note)
        details.append(lines)
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(headers, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * width for width in widths))
    for row, lines in zip(rows, details, strict=True):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        out.extend(f"    {line}" for line in lines)
    return "\n".join(out)
