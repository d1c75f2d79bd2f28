"""What a release did not emulate: one typed collector per run, written to `summary.json`.

Every part of a release that meets something it only stands in for, ignores or cannot run offline
adds one `NotEmulated` fact here (what, where, why) instead of only writing a log line, so a green
rehearsal says exactly how far it speaks for AWS (`summary.json` `not_emulated`, printed at the end).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class NotEmulated:
    what: str  # the key, resource type, provider or setting, e.g. "buildspec cache"
    where: str  # where this run met it, e.g. "Build/Synth" or "staging OrdersKey"
    why: str  # what the rehearsal does instead, for a person


class NotEmulatedLog:
    """Collects facts from every action (some run in parallel threads); each fact once, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._facts: list[NotEmulated] = []

    def add(self, *, what: str, where: str, why: str) -> None:
        fact = NotEmulated(what=what, where=where, why=why)
        with self._lock:
            if fact not in self._facts:
                self._facts.append(fact)

    def __deepcopy__(self, memo: dict[int, object]) -> NotEmulatedLog:
        # dataclasses.asdict deep-copies field values: the collector (and its lock) is shared, not copied.
        return self

    def facts(self) -> list[NotEmulated]:
        with self._lock:
            return list(self._facts)


def render_not_emulated(facts: list[dict[str, str]]) -> list[str]:
    """Lines for the end-of-run summary: one per fact."""
    if not facts:
        return []
    lines = [f"  not emulated ({len(facts)}):"]
    lines += [f"    {f.get('what', '')} at {f.get('where', '')}: {f.get('why', '')}" for f in facts]
    return lines
