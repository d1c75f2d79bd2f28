"""`make bench`: a release is warm only when every build hit the build cache; rollbacks read from the log."""

from __future__ import annotations

from pathlib import Path

from bench.release import action_seconds, build_cache_hit, rollback_in_canary_intervals, where_the_time_went


def _logs(clone: Path, **logs: str) -> None:
    folder = clone / ".rehearsal" / "runs" / "latest" / "logs"
    folder.mkdir(parents=True)
    for name, text in logs.items():
        (folder / f"{name}.log").write_text(text)


def test_a_release_whose_builds_all_hit_the_cache_is_warm(tmp_path: Path) -> None:
    _logs(
        tmp_path,
        Build=".venv: cached virtualenv for requirements.txt (1b8f)\n",
        Tests=".venv-integration: cached virtualenv for requirements-integration.txt (b523)\n",
    )

    assert build_cache_hit(tmp_path)


def test_a_release_with_one_build_installing_is_a_warm_up(tmp_path: Path) -> None:
    _logs(
        tmp_path,
        Build=".venv: cached virtualenv for requirements.txt (1b8f)\n",
        Tests=".venv-integration: installing requirements-integration.txt into /h/venvs/x "
        "(not in the build cache: about 2 minutes)\n",
    )

    assert not build_cache_hit(tmp_path)


DEPLOY_LOG = """\
BeforeAllowTraffic hook reported Succeeded
Shifting 5 aliases (CodeDeployDefault.LambdaCanary10Percent5Minutes): 5 pipeline minutes = 5.0 s; watching 9
   0.00 min: new versions get 10% of traffic
  alarm orders-staging-SubmitOrderErrorsAlarm: OK -> ALARM (1 of the last 1 datapoints [1] breach ...)
Rolling back: orders-staging-SubmitOrderErrorsAlarm is in ALARM after 2.1 s
Aliases back on the versions served before (5 functions)
"""


def test_a_rollback_is_measured_in_canary_intervals_from_the_deploy_log() -> None:
    assert rollback_in_canary_intervals(DEPLOY_LOG) == (2.1 / 5.0, "orders-staging-SubmitOrderErrorsAlarm")


def test_a_deploy_log_without_a_rollback_has_nothing_to_measure() -> None:
    shifted = DEPLOY_LOG.replace("Rolling back:", "Not rolling back:")
    assert rollback_in_canary_intervals(shifted) is None
    assert rollback_in_canary_intervals("no changes: the change set is empty, nothing deployed\n") is None


def _summary(**elapsed: float) -> dict[str, object]:
    stages: dict[str, list[dict[str, object]]] = {}
    for key, seconds in elapsed.items():
        stage, action = key.split("__")
        stages.setdefault(stage, []).append({"action": action, "elapsed": seconds})
    return {"stages": [{"name": name, "actions": actions} for name, actions in stages.items()]}


def test_a_release_is_split_into_its_actions_and_the_rest() -> None:
    spent = action_seconds(_summary(Build__Build=40.0, Staging__Deploy=10.0), total=53.5)

    assert spent == {"Build/Build": 40.0, "Staging/Deploy": 10.0, "other": 3.5}


def test_the_time_per_action_is_the_median_over_releases_longest_first() -> None:
    releases = [
        {"Build/Build": 40.0, "Staging/Deploy": 10.0, "other": 0.5},
        {"Build/Build": 50.0, "Staging/Deploy": 9.0, "other": 0.4},
        {"Build/Build": 45.0, "Staging/Deploy": 11.0, "other": 0.6},
    ]

    assert where_the_time_went(releases) == "Build/Build 45.0 s, Staging/Deploy 10.0 s"
