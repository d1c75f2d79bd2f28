"""Metrics of one environment, kept in process: what CloudWatch would hold, queryable by the alarm evaluator.

Why not the local cloud's CloudWatch (moto `put_metric_data`)? One HTTP round trip per
datapoint costs milliseconds on the request path (the gateway's budget is 5 ms), moto has no
percentiles, and the alarm evaluator reads the same datapoints many times per second while a
canary is watched. An in-process store is exact and costs microseconds; `datapoints()` exports
it when someone wants to look. Names and dimensions are CloudWatch's, so the template's alarms
read it unchanged.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

Dimensions = frozenset[tuple[str, str]]
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")


def dimensions(values: Mapping[str, str]) -> Dimensions:
    """CloudWatch identifies a metric by its exact set of dimensions; this is that set."""
    return frozenset(values.items())


@dataclass(frozen=True)
class MetricKey:
    namespace: str
    name: str
    dimensions: Dimensions


@dataclass(frozen=True)
class Datapoint:
    key: MetricKey
    timestamp: float
    value: float
    unit: str


class MetricStore:
    """Thread-safe datapoints by metric; statistics over time ranges, like `GetMetricStatistics`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[MetricKey, list[tuple[float, float]]] = defaultdict(list)
        self._units: dict[MetricKey, str] = {}

    def put(
        self,
        namespace: str,
        name: str,
        dims: Mapping[str, str],
        value: float,
        *,
        unit: str = "None",
        timestamp: float | None = None,
    ) -> None:
        """Record one datapoint (timestamp in epoch seconds, default now)."""
        key = MetricKey(namespace, name, dimensions(dims))
        when = time.time() if timestamp is None else timestamp
        with self._lock:
            series = self._series[key]
            if series and when < series[-1][0]:
                bisect.insort(series, (when, value))
            else:
                series.append((when, value))
            self._units[key] = unit

    def values(self, key: MetricKey, start: float, end: float) -> list[float]:
        """The values recorded in [start, end)."""
        with self._lock:
            series = self._series.get(key, [])
            low = bisect.bisect_left(series, (start, -math.inf))
            high = bisect.bisect_left(series, (end, -math.inf))
            return [value for _, value in series[low:high]]

    def statistic(self, key: MetricKey, statistic: str, start: float, end: float) -> float | None:
        """One statistic (Sum, Average, SampleCount, Minimum, Maximum, pNN) over [start, end), or None."""
        return compute_statistic(statistic, self.values(key, start, end))

    def keys(self) -> list[MetricKey]:
        with self._lock:
            return list(self._series)

    def datapoints(self) -> Iterable[Datapoint]:
        """Every datapoint recorded so far, oldest first per metric."""
        with self._lock:
            snapshot = {key: list(series) for key, series in self._series.items()}
        for key, series in snapshot.items():
            for timestamp, value in series:
                yield Datapoint(key, timestamp, value, self._units.get(key, "None"))


def compute_statistic(statistic: str, values: list[float]) -> float | None:
    """CloudWatch's statistics over raw values; percentiles by nearest rank. None when no values."""
    if not values:
        return None
    simple: dict[str, Callable[[list[float]], float]] = {
        "Sum": sum,
        "SampleCount": lambda items: float(len(items)),
        "Average": lambda items: sum(items) / len(items),
        "Minimum": min,
        "Maximum": max,
    }
    if statistic in simple:
        return float(simple[statistic](values))
    match = _PERCENTILE.match(statistic)
    if match is None:
        raise ValueError(f"unsupported statistic {statistic!r}")
    ordered = sorted(values)
    rank = math.ceil(float(match.group(1)) / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]
