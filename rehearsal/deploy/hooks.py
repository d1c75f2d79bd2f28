"""CodeDeploy's lifecycle hooks, run offline: invoke the hook function, wait for the status it reports."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TextIO

from rehearsal.runtime.environment import LocalEnvironment

# How long CodeDeploy waits for a hook to report its status (offline: real seconds, not compressed).
HOOK_TIMEOUT_SECONDS = 120.0


def run_hooks(
    local: LocalEnvironment,
    hooks: set[str | None],
    event: str,
    log: TextIO,
    new_versions: Mapping[str, str],
) -> str | None:
    """Each distinct hook once: the groups of a SAM template share one hook that tests every version.

    CodeDeploy invokes the hook by name, i.e. its `$LATEST`: the version this release just
    published from it (invoked by number here, so no worker of an earlier `$LATEST` answers).
    """
    for hook in sorted(h for h in hooks if h):
        failure = _run_hook(local, hook, event, log, new_versions.get(hook))
        if failure:
            return failure
    return None


def _run_hook(local: LocalEnvironment, hook: str, event: str, log: TextIO, version: str | None) -> str | None:
    """Invoke a hook as CodeDeploy does, then wait for the status it reports; the failure, if any."""
    deployment_id = f"d-{uuid.uuid4().hex[:9].upper()}"
    execution_id = str(uuid.uuid4())
    log.write(f"{event} hook {hook} (deployment {deployment_id})\n")
    result = local.functions.invoke(
        hook,
        {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": execution_id},
        qualifier=version,
    )
    status = local.control.wait_for_hook(execution_id, 0 if result.failed else HOOK_TIMEOUT_SECONDS)
    if status is None or status.status != "Succeeded":
        reported = status.status if status else "no status (the hook did not report)"
        detail = f": {json.dumps(result.error)}" if result.error else f": {json.dumps(result.payload)}"
        log.write(f"{event} hook reported {reported}{detail}\n")
        return f"rolled back: the {event} hook {hook} reported {reported}"
    log.write(f"{event} hook reported Succeeded\n")
    return None
