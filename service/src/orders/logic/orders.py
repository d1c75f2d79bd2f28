"""Reading an order for the status endpoint."""

from __future__ import annotations

from orders.logic.ports import OrderRepository
from orders.models.errors import OrderNotFoundError
from orders.models.order import Order


def get_order(*, order_id: str, repository: OrderRepository) -> Order:
    """The order, or OrderNotFoundError (404)."""
    order = repository.get_order(order_id=order_id)
    if order is None:
        raise OrderNotFoundError(f"Order {order_id} does not exist")
    return order
