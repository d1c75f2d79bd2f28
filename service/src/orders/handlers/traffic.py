"""Scheduled, staging only (StagingTrafficFunction): real calls so canaries judge with evidence.

Every minute: `logic/traffic.py`'s rounds against the stage URL in API_URL, SigV4-signed with
this function's role. It raises when an answer broke the contract, so its log says which.
"""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.logic.traffic import ROUNDS_PER_MINUTE, run_traffic
from orders.observability import logger

# 20 rounds, 2 s apart: the calls spread over ~40 s of each minute, inside the 60 s timeout.
PAUSE_SECONDS = 2.0


class UnexpectedAnswersError(RuntimeError):
    """The service answered a synthetic call against its contract."""


def _pause() -> None:
    threading.Event().wait(PAUSE_SECONDS)  # pacing the calls, not waiting for a condition


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
