"""Synthetic traffic for staging deployments: every kind of real call, at a steady rate.

On AWS nothing calls staging while CodeDeploy shifts traffic, so `notBreaching` alarms would pass
any version. The staging traffic function runs this every minute: each round submits an order
(alternately one the worker accepts and one it rejects), reads it back, presigns an attachment
and uploads it. So every released function (submit, status, presign, worker, attach) gets calls on
the new version in each canary step (docs/decisions/0021-deployment-and-operations-alarms.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orders.logic.ports import ApiClient, FormPoster

ROUNDS_PER_MINUTE = 20
_ORDERS = (
    {
        "customerId": "synthetic",
        "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": 1}],
    },
    {
        "customerId": "synthetic",
        "currency": "EUR",
        "items": [{"sku": "SYNTHETIC", "quantity": 1, "unitPrice": 1}],
    },
)
_ATTACHMENT = {"fileName": "synthetic.pdf", "contentType": "application/pdf"}
_PDF = b"%PDF-1.4\n% synthetic staging traffic\n%%EOF\n"


@dataclass(kw_only=True)
class TrafficReport:
    """Calls made, and one line per answer that was not the one the contract promises."""

    calls: int = 0
    unexpected: list[str] = field(default_factory=list)

    def expect(self, what: str, status: int, expected: int) -> bool:
        self.calls += 1
        if status != expected:
            self.unexpected.append(f"{what}: expected {expected}, got {status}")
        return status == expected


def run_round(*, number: int, api: ApiClient, forms: FormPoster, report: TrafficReport) -> None:
    """One submit, one status read, one presign and one upload."""
    submitted = api.call(method="POST", path="/orders", body=_ORDERS[number % len(_ORDERS)])
    if not report.expect("POST /orders", submitted.status, 202):
        return
    order_id = str(submitted.body["orderId"])
    report.expect("GET /orders/{orderId}", api.call(method="GET", path=f"/orders/{order_id}").status, 200)
    presigned = api.call(method="POST", path=f"/orders/{order_id}/attachments", body=_ATTACHMENT)
    if not report.expect("POST /orders/{orderId}/attachments", presigned.status, 201):
        return
    status = forms.post(
        url=presigned.body["url"], fields=presigned.body["fields"], file_name="synthetic.pdf", content=_PDF
    )
    report.expect("presigned upload", status, 204)


def run_traffic(
    *, api: ApiClient, forms: FormPoster, rounds: int = ROUNDS_PER_MINUTE, pause: Callable[[], None]
) -> TrafficReport:
    """`rounds` rounds with `pause()` between them (spreads the calls over the minute)."""
    report = TrafficReport()
    for number in range(rounds):
        if number:
            pause()
        run_round(number=number, api=api, forms=forms, report=report)
    return report
