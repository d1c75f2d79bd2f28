"""The local cloud: one moto server per environment, isolated, health-checked, stopped cleanly."""

from __future__ import annotations

import time

import pytest

from rehearsal.alarms.metrics import MetricStore
from rehearsal.base.errors import UserError
from rehearsal.cloud.server import port_is_free, start_local_cloud, wait_until_healthy


def test_environments_are_isolated_servers_and_stop_frees_the_port() -> None:
    staging = start_local_cloud("staging")
    production = start_local_cloud("production")
    try:
        staging.client("sqs").create_queue(QueueName="only-in-staging")
        assert staging.port != production.port
        assert "QueueUrls" not in production.client("sqs").list_queues()
        assert production.environ()["AWS_ENDPOINT_URL"] == production.endpoint_url
        assert production.running
    finally:
        staging.stop()
        production.stop()
    staging.stop()  # stopping twice is harmless
    assert not staging.running
    assert port_is_free(staging.port) and port_is_free(production.port)


def test_an_unknown_environment_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown environment"):
        start_local_cloud("qa")


def test_a_cloud_that_never_answers_is_a_user_error() -> None:
    with pytest.raises(UserError, match="did not become healthy"):
        wait_until_healthy("http://127.0.0.1:9", deadline=time.monotonic() + 0.1)


def test_metric_datapoints_can_be_exported_in_time_order() -> None:
    store = MetricStore()
    store.put("N", "M", {}, 2.0, timestamp=20)
    store.put("N", "M", {}, 1.0, timestamp=10)
    assert [point.value for point in store.datapoints()] == [1.0, 2.0]
    assert len(store.keys()) == 1
