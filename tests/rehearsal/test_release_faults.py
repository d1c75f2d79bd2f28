"""Releases with faults unit tests miss are stopped in staging; a runner killed mid-canary recovers.

Each fault is a real release of this repository (Source, the Build with `sam package`, the Staging
stage's change set, PreTraffic hook and canary) from the state the session's good release left
(`good_release`, shared with test_release_offline.py): a copy of that repository and its `.rehearsal/`
per fault, so the releases run side by side in their own processes and none sees another's state.
Code faults sit on a path only a published Lambda version takes (`AWS_LAMBDA_FUNCTION_VERSION` is a
number there, unset or `$LATEST` in unit tests), so the unit tests pass with them; every fault
fails every real request of its kind, whichever source sends the canary's traffic.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rehearsal.base.clock import TimeScale, timestamp
from rehearsal.base.layout import StateLayout
from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.deploy.release_store import ReleaseStore, SavedRelease
from rehearsal.release.deploy_port import RecoveredEnvironment
from rehearsal.release.recovery import describe_recovery, recover_interrupted_release
from tests.rehearsal.permission_faults import STATUS_CANNOT_READ_ORDERS
from tests.rehearsal.release_support import (
    HOOK,
    Edit,
    Fault,
    FaultyRelease,
    GoodRelease,
    InMemoryDeployer,
    KilledRelease,
    copy_released_project,
    kill_a_release_mid_canary,
    make_project,
    release_fault,
    released_for_tests,
    run_release,
)

pytestmark = pytest.mark.timeout(600)

CANARY_STEP_MINUTES = 5  # staging's Canary10Percent5Minutes: an alarm must stop a fault within this step
# A release computes more than it waits (builds, synth, function start-ups, the staging traffic):
# on 2 cores, four side by side with the rest of the suite drove the load to ~30 (ADR 0056).
PARALLEL_RELEASES = 2
SUBMIT = "service/src/orders/handlers/submit.py"
PRESIGN = "service/src/orders/handlers/presign.py"
STATUS = "service/src/orders/handlers/status.py"
ORDERS_LOGIC = "service/src/orders/logic/orders.py"
TEMPLATE = "service/template.yaml"
FUTURE = "from __future__ import annotations\n"
PARSED = "    order_request = parse_order_request(request.json_body())\n"
# Lambda sets this to the version's number; unit tests leave it unset.
PUBLISHED = '    if os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST") != "$LATEST":\n'


def _imports(path: str, module: str) -> Edit:
    return Edit(path=path, old=FUTURE, new=f"{FUTURE}\nimport {module}\n")


FAULTS = (
    Fault(
        name="an API handler raising on every valid order",
        edits=(
            _imports(SUBMIT, "os"),
            Edit(path=SUBMIT, old=PARSED, new=f'{PARSED}{PUBLISHED}        raise RuntimeError("fault")\n'),
        ),
        stopped_by="SubmitOrderErrorsAlarm",
    ),
    Fault(
        # A template change no unit test reads: the worker's orders table setting names a table that
        # does not exist, so every record fails (partial batch failures: Errors stays at 0).
        name="a worker failing every record",
        edits=(
            Edit(
                path=TEMPLATE,
                old="      Handler: orders.handlers.worker.handler\n",
                new="      Handler: orders.handlers.worker.handler\n      Environment:\n        Variables:\n"
                "          ORDERS_TABLE_NAME: !Sub ${OrdersTable}-archive\n",
            ),
        ),
        stopped_by="ProcessOrdersRecordFailuresAlarm",
    ),
    Fault(
        name="latency past the p99 latency alarm",
        edits=(
            _imports(SUBMIT, "os\nimport time"),
            # Past the alarm's 5 s, far enough under the function's 10 s timeout that a busy machine
            # does not turn it into an error (then the errors alarm would stop it first).
            Edit(path=SUBMIT, old=PARSED, new=f"{PARSED}{PUBLISHED}        time.sleep(5.5)\n"),
        ),
        stopped_by="SubmitOrderLatencyAlarm",
    ),
    Fault(
        name="the attachments path failing",
        edits=(
            _imports(PRESIGN, "os"),
            Edit(
                path=PRESIGN,
                old="    return json_response(201, body)\n",
                new=f'{PUBLISHED}        raise RuntimeError("fault")\n    return json_response(201, body)\n',
            ),
        ),
        stopped_by="PresignAttachmentErrorsAlarm",
    ),
    Fault(
        # Unknown orders fail instead of answering 404: the hook's check of the new version fails.
        name="a failing PreTraffic hook",
        edits=(
            _imports(ORDERS_LOGIC, "os"),
            Edit(
                path=ORDERS_LOGIC,
                old="        raise OrderNotFoundError(",
                new=f'    {PUBLISHED}            raise RuntimeError("fault")\n'
                "        raise OrderNotFoundError(",
            ),
        ),
        stopped_by=HOOK,
    ),
    Fault(
        # hypothesis is in the project's virtualenv (a test-only library), not in the package, the
        # Powertools layer or the runtime: on Lambda the new version cannot load.
        name="a missing dependency",
        edits=(_imports(STATUS, "hypothesis"),),
        stopped_by=HOOK,
    ),
    Fault(
        # A change to the status code whose role loses dynamodb:GetItem in the same commit: the local
        # cloud denies the read as IAM would (ADR 0043), the hook's "unknown order is 404" check of the
        # new version gets a 500. (A policy change alone publishes no version: no hook runs.)
        name="a removed IAM permission",
        edits=(
            _imports(STATUS, "os"),
            Edit(path=TEMPLATE, old=STATUS_CANNOT_READ_ORDERS.before, new=STATUS_CANNOT_READ_ORDERS.after),
        ),
        stopped_by=HOOK,
    ),
)
BY_ALARM = [fault for fault in FAULTS if fault.stopped_by != HOOK]
BY_HOOK = [fault for fault in FAULTS if fault.stopped_by == HOOK]


def _name(fault: Fault) -> str:
    return re.sub(r"\W+", "-", fault.name)


@pytest.fixture(scope="module")
def releases(
    good_release: GoodRelease, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Any]]]:
    """Every fault, and the killed release, queued at once; each test waits for the one it reads.

    The killed release goes last: its deadline for the canary's first step counts its Build, and by
    then the faults' Builds have filled each build host's cache (a cold one installs the Build's
    virtualenv first, minutes under this load; ADR 0058)."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads forked mid-run
    futures: dict[str, Future[Any]] = {}
    copies = []
    with ProcessPoolExecutor(max_workers=PARALLEL_RELEASES, mp_context=context) as pool:
        with released_for_tests():  # the releasing processes start outside coverage, as their children
            for fault in FAULTS:
                copy = copy_released_project(good_release.repo, tmp_path_factory.mktemp(_name(fault)))
                copies.append(copy)
                futures[fault.name] = pool.submit(release_fault, copy, fault)
            copy = copy_released_project(good_release.repo, tmp_path_factory.mktemp("killed"))
            copies.append(copy)
            futures["killed"] = pool.submit(kill_a_release_mid_canary, copy)
        yield futures
    for copy in copies:
        shutil.rmtree(copy, ignore_errors=True)


def _faulty(releases: dict[str, Future[Any]], fault: Fault) -> FaultyRelease:
    result: FaultyRelease = releases[fault.name].result(timeout=600)
    return result


@pytest.mark.parametrize("fault", FAULTS, ids=_name)
def test_a_faulty_release_is_stopped_in_staging_by_what_watches_for_it(
    releases: dict[str, Future[Any]], fault: Fault
) -> None:
    faulty = _faulty(releases, fault)
    summary = faulty.summary
    assert (summary["result"], summary["failed_stage"]) == ("Failed", "Staging"), summary["message"]
    assert summary["failed_action"] == "Service.Deploy", summary["message"]
    if fault.stopped_by == HOOK:
        assert HOOK in summary["message"] and summary["alarm"] is None, summary["message"]
    else:
        assert fault.stopped_by in (summary["alarm"] or ""), summary["message"]


@pytest.mark.parametrize("fault", FAULTS, ids=_name)
def test_after_a_faulty_release_staging_and_production_serve_the_good_commit(
    releases: dict[str, Future[Any]], fault: Fault, good_release: GoodRelease
) -> None:
    faulty = _faulty(releases, fault)
    environments = faulty.summary["environments"]
    assert {name: environments[name]["commit"] for name in ("staging", "production")} == {
        "staging": good_release.commit,
        "production": good_release.commit,
    }
    assert faulty.saved == {"staging": good_release.commit, "production": good_release.commit}
    staging = faulty.served["staging"]
    assert staging.commit == good_release.commit
    assert staging.aliases_at_end == staging.aliases_at_start
    assert all(routing == {"1": 1.0} for routing in staging.aliases_at_end.values()), staging
    production = faulty.served["production"]  # started ahead from its last release, never deployed to
    assert production.commit == good_release.commit
    assert production.aliases_at_end == production.aliases_at_start


@pytest.mark.parametrize("fault", BY_ALARM, ids=_name)
def test_a_fault_an_alarm_catches_gets_no_more_than_the_first_canary_step(
    releases: dict[str, Future[Any]], fault: Fault
) -> None:
    log = _faulty(releases, fault).deploy_log
    # Pipeline minutes, not real seconds: the shift's clock stops while it holds a step for canary
    # traffic, and the alarms judge a step before the next one starts.
    rollback = re.search(r"during the traffic shift \(at ([\d.]+) of [\d.]+ pipeline minutes\)", log)
    assert rollback, log
    assert float(rollback.group(1)) <= CANARY_STEP_MINUTES, log
    assert "new versions get 10% of traffic" in log
    assert "all aliases at 100%" not in log


@pytest.mark.parametrize("fault", BY_HOOK, ids=_name)
def test_a_fault_the_pre_traffic_hook_catches_never_gets_traffic(
    releases: dict[str, Future[Any]], fault: Fault
) -> None:
    log = _faulty(releases, fault).deploy_log
    assert "BeforeAllowTraffic hook reported Failed" in log, log
    assert "new versions get" not in log


# ---------------------------------------------------------------- a runner killed mid-canary


def _killed(releases: dict[str, Future[Any]]) -> KilledRelease:
    result: KilledRelease = releases["killed"].result(timeout=600)
    return result


def test_a_release_killed_mid_canary_leaves_its_deployment_in_flight(
    releases: dict[str, Future[Any]],
) -> None:
    killed = _killed(releases)
    assert "new versions get 10% of traffic" in killed.log_at_kill
    assert "all aliases at 100%" not in killed.log_at_kill
    assert killed.in_flight_at_kill == ["staging"]
    assert killed.summary_at_kill["result"] == "InProgress"


def test_the_next_start_puts_staging_back_on_the_last_promoted_release_and_says_so_in_one_line(
    releases: dict[str, Future[Any]], good_release: GoodRelease
) -> None:
    killed = _killed(releases)
    said = [line for line in killed.status_output.splitlines() if "was interrupted during" in line]
    assert len(said) == 1, killed.status_output
    assert f"staging back on {good_release.commit[:12]}" in said[0]
    assert killed.killed_run in said[0]
    assert killed.in_flight_after_status == []
    assert killed.saved_after_status == {"staging": good_release.commit, "production": good_release.commit}


def test_the_killed_run_is_marked_interrupted_where_it_stood(releases: dict[str, Future[Any]]) -> None:
    summary = _killed(releases).summary_after_status
    assert (summary["result"], summary["failed_stage"], summary["failed_action"]) == (
        "Interrupted",
        "Staging",
        "Service.Deploy",
    )
    assert summary["ended_at"]
    states = {action["state"] for stage in summary["stages"] for action in stage["actions"]}
    assert "InProgress" not in states


def test_the_release_after_a_killed_one_reaches_production(releases: dict[str, Future[Any]]) -> None:
    killed = _killed(releases)
    summary = killed.next_summary
    assert killed.next_exit_code == 0, json.dumps(summary)[-2000:]
    assert summary["result"] == "Succeeded"
    assert summary["commit"] == killed.killed_commit
    assert {name: summary["environments"][name]["commit"] for name in ("staging", "production")} == {
        "staging": killed.killed_commit,
        "production": killed.killed_commit,
    }


# ---------------------------------------------------------------- recovery, without a cloud


def _saved_release(store_root: Path, number: int, commit: str) -> SavedRelease:
    folder = store_root / "staging" / "releases" / str(number)
    folder.mkdir(parents=True)
    record = {"commit": commit, "stack_name": "orders-staging", "parameters": {}}
    (folder / "release.json").write_text(json.dumps(record), encoding="utf-8")
    return SavedRelease(folder, commit, "orders-staging", {})


@pytest.mark.parametrize("promoted", [False, True], ids=["before-promotion", "after-promotion"])
def test_recovery_puts_the_saved_state_back_on_the_release_the_deployment_shifted_from(
    tmp_path: Path, promoted: bool
) -> None:
    layout = StateLayout(root=tmp_path / ".rehearsal")
    store = ReleaseStore(layout.deployer)
    serving = _saved_release(layout.deployer, 1, "a" * 40)
    staged = _saved_release(layout.deployer, 2, "b" * 40)
    store.promote("staging", serving)
    store.begin("staging", serving=serving, staged=staged)
    if promoted:  # killed between the promotion and the end of the deployment
        store.promote("staging", staged)
    run = layout.run("20260101-000000-bbbbbbb")
    run.mkdir(parents=True)
    (run / "summary.json").write_text(
        json.dumps({"run_id": run.name, "result": "InProgress", "started_at": timestamp(), "stages": []}),
        encoding="utf-8",
    )
    (layout.runs / "latest").symlink_to(run.name)

    line = recover_interrupted_release(
        layout.root, LocalDeployer(layout.root, TimeScale(seconds_per_minute=1))
    )

    assert line is not None and f"staging back on {'a' * 12}" in line and "\n" not in line
    current = store.current("staging")
    assert current is not None and current.commit == "a" * 40
    assert not staged.directory.exists()
    assert store.in_flight() == []
    assert json.loads((run / "summary.json").read_text(encoding="utf-8"))["result"] == "Interrupted"


def test_with_nothing_interrupted_the_next_start_says_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / ".rehearsal"
    state_dir.mkdir()
    deployer = LocalDeployer(state_dir, TimeScale(seconds_per_minute=1))
    assert recover_interrupted_release(state_dir, deployer) is None


def test_a_release_started_after_a_crash_recovers_first_and_keeps_the_line_in_its_notes(
    tmp_path: Path,
) -> None:
    repo = make_project(tmp_path)
    restored = RecoveredEnvironment(environment="staging", serving="a" * 40, abandoned="b" * 40)

    class AfterACrash(InMemoryDeployer):
        def recover_interrupted(self) -> tuple[RecoveredEnvironment, ...]:
            return (restored,)

    out = io.StringIO()
    result = run_release(repo, AfterACrash(), out=out)

    line = describe_recovery(None, (restored,))
    assert result.summary["notes"] == [line]
    assert out.getvalue().count("was interrupted") == 1
    assert result.succeeded
