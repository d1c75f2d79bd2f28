"""Scheduled, staging only (StagingTrafficFunction): real calls so canaries judge with evidence.

Every minute: `logic/traffic.py`'s rounds against the stage URL in API_URL, SigV4-signed with
this function's role. It raises when an answer broke the contract, so its log says which.

The rounds are paced in pipeline time: a pipeline minute lasts 60 s on AWS, and
`PIPELINE_MINUTE_SECONDS` where a rehearsal compresses time (the variable `make bake` reads too),
so that offline the same schedule sends the same calls per pipeline minute (ADR 0040).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.logic.traffic import ROUNDS_PER_MINUTE, run_traffic
from orders.models.errors import ConfigurationError
from orders.observability import logger

# 20 rounds, 2 s apart: the calls spread over ~40 s of each minute, inside the 60 s timeout.
PAUSE_SECONDS = 2.0
_SECONDS_PER_MINUTE = 60.0


class UnexpectedAnswersError(RuntimeError):
    """The service answered a synthetic call against its contract."""


@functools.cache
def pause_seconds() -> float:
    """PAUSE_SECONDS in pipeline time: as is on AWS, compressed where PIPELINE_MINUTE_SECONDS says so."""
    raw = os.environ.get("PIPELINE_MINUTE_SECONDS", "")
    try:
        minute = float(raw) if raw else _SECONDS_PER_MINUTE
    except ValueError:
        minute = -1.0
    if not math.isfinite(minute) or minute <= 0:
        raise ConfigurationError(
            f"PIPELINE_MINUTE_SECONDS={raw!r} is not a positive number: fix the function's environment"
        )
    return PAUSE_SECONDS * minute / _SECONDS_PER_MINUTE


def _pause() -> None:
    threading.Event().wait(pause_seconds())  # pacing the calls, not waiting for a condition


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """Lambda entry point."""
    report = run_traffic(
        api=deps.api_client(), forms=deps.form_poster(), rounds=ROUNDS_PER_MINUTE, pause=_pause
    )
    logger.info("Synthetic traffic sent", calls=report.calls, unexpected=report.unexpected)
    if report.unexpected:
        raise UnexpectedAnswersError("; ".join(report.unexpected[:5]))
    return {"calls": report.calls}
