"""The outbox sweeper: send every stored order whose message was never sent.

An order is written PENDING and marked unsent in the same write; the submit function then sends
its message and clears the mark. When the send fails (or the process dies in between), the order
stays marked; this sweeper, run on a schedule, sends it. A message sent twice is harmless: the
worker is idempotent per order and only a PENDING order changes
(docs/decisions/0023-idempotency-and-outbox.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from orders.logic.ports import OrderQueue, OrderRepository
from orders.logic.submit import clear_outbox_mark, send_order

# Longer than a submit invocation can run (its Timeout is 10 s), so the sweeper does not race a
# send that is about to succeed. A race would only send a duplicate, which the worker absorbs.
UNSENT_GRACE_SECONDS = 60
MAX_ORDERS_PER_SWEEP = 500


@dataclass(frozen=True, kw_only=True)
class SweepResult:
    """How many unsent orders one sweep sent, and how many sends failed (retried next sweep)."""

    resent: int
    failed: int


def resend_unsent_orders(
    *, repository: OrderRepository, queue: OrderQueue, created_before: str, limit: int = MAX_ORDERS_PER_SWEEP
) -> SweepResult:
    """Send each order created before `created_before` (ISO 8601 UTC) that is still marked unsent."""
    resent = failed = 0
    for order in repository.unsent_orders(created_before=created_before, limit=limit):
        try:
            send_order(order=order, queue=queue)
        except Exception:  # one failed send must not stop the sweep; the order stays marked
            failed += 1
            continue
        clear_outbox_mark(order_id=order.order_id, repository=repository)
        resent += 1
    return SweepResult(resent=resent, failed=failed)
