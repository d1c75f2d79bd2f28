"""The worker's business rules: which orders are ACCEPTED and which are REJECTED.

Integration tests rely on these exact rules:

* REJECTED, reason ``unknown SKU: <sku>``: any item whose ``sku`` is not in ``CATALOGUE``.
  The catalogue is every SKU matching ``SKU-`` followed by 1 to 6 digits (e.g. ``SKU-1``,
  ``SKU-000123``); so ``"UNKNOWN-SKU"`` (valid for the API, unknown here) is rejected.
* REJECTED, reason ``total <total> exceeds limit <limit>``: all SKUs known but
  sum(quantity x unitPrice) > MAX_ORDER_TOTAL (environment; default 10000).
  E.g. one item ``{"sku": "SKU-1", "quantity": 2, "unitPrice": 6000}``.
* ACCEPTED: everything else, e.g. ``{"sku": "SKU-1", "quantity": 1, "unitPrice": 9.99}``.

Unknown SKUs are checked first, so an order breaking both rules gets the SKU reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from orders.logic.ports import OrderRepository, WriteOutcome
from orders.models.errors import PoisonMessageError
from orders.models.order import OrderRequest, OrderStatus

CATALOGUE_PATTERN = r"SKU-[0-9]{1,6}"


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The final status of an order and, when REJECTED, why."""

    status: OrderStatus
    reason: str | None = None


def is_in_catalogue(sku: str) -> bool:
    """Whether the shop sells this SKU."""
    return re.fullmatch(CATALOGUE_PATTERN, sku) is not None


def decide(*, request: OrderRequest, max_order_total: Decimal) -> Decision:
    """Apply the rules in the module docstring."""
    for item in request.items:
        if not is_in_catalogue(item.sku):
            return Decision(status=OrderStatus.REJECTED, reason=f"unknown SKU: {item.sku}")
    if request.total > max_order_total:
        return Decision(
            status=OrderStatus.REJECTED, reason=f"total {request.total} exceeds limit {max_order_total}"
        )
    return Decision(status=OrderStatus.ACCEPTED)


@dataclass(frozen=True, kw_only=True)
class ProcessResult:
    """The decision, and whether this call wrote it (False when the order was final already)."""

    decision: Decision
    written: bool


def process_order(
    *, order_id: str, request: OrderRequest, max_order_total: Decimal, repository: OrderRepository
) -> ProcessResult:
    """Decide and write the final status; an order we never stored is poison."""
    decision = decide(request=request, max_order_total=max_order_total)
    outcome = repository.finalize_order(order_id=order_id, status=decision.status, reason=decision.reason)
    if outcome is WriteOutcome.ORDER_MISSING:
        raise PoisonMessageError(f"Order {order_id} does not exist")
    return ProcessResult(decision=decision, written=outcome is WriteOutcome.WRITTEN)
