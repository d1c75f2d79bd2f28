"""Settings read from the environment once, at first use (never at import time)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from orders.models.errors import ConfigurationError

DEFAULT_MAX_ORDER_TOTAL = Decimal(10_000)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What the functions need from their environment; empty strings mean "not set".

    Not every function needs every value (the status function has no queue), so a
    missing value fails only where it is used, with `require`, naming the variable.
    """

    orders_table_name: str
    idempotency_table_name: str
    orders_queue_url: str
    attachments_bucket_name: str
    max_order_total: Decimal
    versions_under_test: str
    api_url: str = ""
    region: str = ""

    def require(self, name: str) -> str:
        """The value of setting `name`, or a ConfigurationError naming its environment variable."""
        value: str = getattr(self, name)
        if not value:
            raise ConfigurationError(f"{name.upper()} is not set: set it in the function's environment")
        return value


def _max_order_total(raw: str | None) -> Decimal:
    if not raw:
        return DEFAULT_MAX_ORDER_TOTAL
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value <= 0:
        raise ConfigurationError(f"MAX_ORDER_TOTAL={raw!r} is not a positive number: fix the environment")
    return value


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    env = os.environ
    return Settings(
        orders_table_name=env.get("ORDERS_TABLE_NAME", ""),
        idempotency_table_name=env.get("IDEMPOTENCY_TABLE_NAME", ""),
        orders_queue_url=env.get("ORDERS_QUEUE_URL", ""),
        attachments_bucket_name=env.get("ATTACHMENTS_BUCKET_NAME", ""),
        max_order_total=_max_order_total(env.get("MAX_ORDER_TOTAL")),
        versions_under_test=env.get("VERSIONS_UNDER_TEST", ""),
        api_url=env.get("API_URL", ""),
        region=env.get("AWS_REGION", ""),
    )
