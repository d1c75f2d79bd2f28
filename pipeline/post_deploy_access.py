"""The stack outputs post-deploy test builds get as variables (their access: pipeline/cross_account.py)."""

from __future__ import annotations

# Stack outputs the integration tests read (tests/integration/conftest.py), as build variables.
STACK_OUTPUT_VARIABLES = {
    "ApiUrl": "BASE_URL",
    "OrdersTableName": "ORDERS_TABLE_NAME",
}
