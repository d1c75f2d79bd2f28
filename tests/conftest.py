"""Shared test options, and how `make test` spreads the suite over the machine's cores.

`--base-url` points the integration tests at a deployed API.

`make test` runs pytest-xdist with `--dist loadscope --no-loadscope-reorder`: each test module
runs whole on one worker, so its module-scoped fixtures (a local environment, two whole releases)
start once, and session-scoped ones (a CDK synth) at most once per worker; the modules that run
longest are handed out first, in the order below, so that they overlap the many short ones instead
of ending the run alone (docs/decisions/0061-parallel-test-suite.md).

`make check-tests` (the pipeline's Build) runs the unit and infra tests as two pytest processes side by
side instead, `--part cdk` and `--part others`: each imports only the modules it runs, where every
xdist worker imports them all (docs/decisions/0066-the-builds-tests-in-two-parts.md).
"""

from __future__ import annotations

import functools
import gc
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
import pytest

TESTS = Path(__file__).parent
# The modules that run longest, longest first (make test's --durations; about a third of the run's
# CPU between them). Only the order of work depends on this list: a stale one costs time, never a test.
LONGEST_FIRST = (
    "rehearsal/test_release_offline.py",  # the good release (shared with the next), a self-update
    "rehearsal/test_release_faults.py",  # seven faulty releases and a killed one, side by side
    "infra/test_another_team.py",  # make init, then the infra tests and make synth on a copy
    # The longest of the unit and infra tests, 2-5 s each: the last module handed out no longer runs
    # alone at the end (ADR 0061).
    "infra/test_service_template.py",
    "infra/test_bootstrap_policy.py",
    "infra/test_service_nag.py",
    "unit/test_worker.py",
    "infra/test_redrive.py",
    "infra/test_pipeline_config.py",
    "infra/test_integration_suite.py",
)
# The infra modules that share test_pipeline.py's synthesis (tests/infra/conftest.py `synth`: ~3.5 s of
# CPU for its first context, half of it node's).
SHARING_THE_SYNTH = ("test_bake", "test_bootstrap_policy", "test_cross_account", "test_least_privilege")
# Modules that run as one unit of work, on one worker: they share a session fixture that would
# otherwise run once per worker: a whole release (`good_release`, about a minute), or the synthesis.
ONE_UNIT = {
    "tests/rehearsal/test_release_faults.py": "tests/rehearsal/test_release_offline.py",
    **{f"tests/infra/{module}.py": "tests/infra/test_pipeline.py" for module in SHARING_THE_SYNTH},
    "tests/rehearsal/test_accounts_synthesized.py": "tests/infra/test_pipeline.py",
}
# The modules that drive the CDK through jsii (a node kernel per process, the pipeline's synthesis):
# `--part cdk` collects them, `--part others` every other module. A module missing here runs in the
# other part, a stale name matches nothing: either costs time, never a test.
CDK_MODULES = frozenset(
    f"infra/{module}.py"
    for module in (
        *SHARING_THE_SYNTH,
        "test_deploy_guard",
        "test_pipeline",
        "test_pipeline_config",
        "test_service_nag",
    )
)
PARTS = ("cdk", "others")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--base-url",
        default=None,
        help="API base URL for tests/integration (staging in the pipeline; the local runtime by default)",
    )
    parser.addoption(
        "--part",
        choices=PARTS,
        default=None,
        help="collect only the test modules that drive the CDK (cdk), or only the others (make check-tests)",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With `--part`, the test modules of the other part are not collected (so never imported)."""
    part = config.getoption("part", None)
    if part is None or not collection_path.name.startswith("test_") or TESTS not in collection_path.parents:
        return None  # pytest's own rules
    module = collection_path.relative_to(TESTS).as_posix()
    return True if (module in CDK_MODULES) != (part == "cdk") else None


def _rank(item: pytest.Item) -> int:
    module = item.path.relative_to(TESTS).as_posix() if TESTS in item.path.parents else ""
    return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_configure(config: pytest.Config) -> None:
    # Tests build their clients afresh, as a new Lambda process does (tests/unit/conftest.py), and
    # each new botocore session read endpoints.json and the service models from disk again: over a
    # third of the unit and infra tests' CPU. One loader per data path for the whole test process
    # keeps what it read; every session still gets its own clients, resolver and configuration.
    botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)
    if config.pluginmanager.hasplugin("hypothesispytest") and _runs_tests(config):
        import hypothesis  # noqa: PLC0415 - not in the integration tests' install

        # Deadlines time one example on the wall clock: on 2 shared cores a busy moment fails a
        # correct example (a 200 ms deadline took 516 ms in a whole-suite run). Properties stay checked.
        hypothesis.settings.register_profile("suite", deadline=None)
        hypothesis.settings.load_profile("suite")


def _runs_tests(config: pytest.Config) -> bool:
    """False in pytest-xdist's controller: it hands the tests to its workers and imports none."""
    return hasattr(config, "workerinput") or config.getoption("dist", "no") == "no"


@pytest.hookimpl(optionalhook=True)  # unknown to pytest without xdist (-p no:xdist)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's `loadscope`, with the modules of ONE_UNIT in one scope (called only where xdist runs)."""
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - not in the integration tests' install

    if config.getoption("dist", None) != "loadscope":
        return None  # xdist's own choice

    class OneUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return ONE_UNIT.get(scope, scope)

    return OneUnitScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first; every other module keeps its place and each test its order."""
    items.sort(key=_rank)  # a stable sort: a module's tests stay together


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (botocore's models, moto, the CDK bindings: millions of objects) lives as
    long as the process: moved out of the collector's reach, every later full collection stops walking
    it again (the unit and infra tests' CPU -10 %, measured: ADR 0065)."""
    gc.freeze()
