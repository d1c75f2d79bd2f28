"""Time in the rehearsal: one `TimeScale` for compressed pipeline time, and one timestamp spelling.

A canary of 10 pipeline minutes at `TimeScale(seconds_per_minute=2)` lasts 20 real seconds; every
duration AWS states in seconds (an alarm period, a visibility timeout) shrinks by the same ratio.
The scale is given once (the deployer's or the environment's constructor) and converted only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

SECONDS_PER_MINUTE = 60.0


@dataclass(frozen=True, kw_only=True)
class TimeScale:
    """Real seconds per pipeline minute: 60 is real time, 0.6 runs a hundred times faster."""

    seconds_per_minute: float

    def __post_init__(self) -> None:
        if not self.seconds_per_minute > 0:
            raise ValueError(
                f"a time scale must be above 0 seconds per minute, not {self.seconds_per_minute}"
            )

    @property
    def ratio(self) -> float:
        """Real seconds per pipeline second."""
        return self.seconds_per_minute / SECONDS_PER_MINUTE

    def real_seconds(self, pipeline_seconds: float) -> float:
        """How long `pipeline_seconds` (an alarm period, a timeout as AWS states it) last here."""
        return pipeline_seconds * self.ratio

    def real_seconds_for_minutes(self, pipeline_minutes: float) -> float:
        return pipeline_minutes * self.seconds_per_minute

    def pipeline_minutes(self, real_seconds: float) -> float:
        """The pipeline minutes that `real_seconds` of real time stand for."""
        return real_seconds / self.seconds_per_minute


REAL_TIME = TimeScale(seconds_per_minute=SECONDS_PER_MINUTE)


def timestamp(moment: datetime | None = None) -> str:
    """The one spelling of a moment in records and summaries: ISO 8601 in UTC, to the second."""
    return (moment or datetime.now(UTC)).isoformat(timespec="seconds")


def run_id_stamp(moment: datetime | None = None) -> str:
    """The time part of a run id: sortable and safe in a file name (`20260101-120000`)."""
    return (moment or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
