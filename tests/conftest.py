"""Shared test options: `--base-url` points the integration tests at a deployed API."""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--base-url",
        default=None,
        help="API base URL for tests/integration (staging in the pipeline; the local runtime by default)",
    )
