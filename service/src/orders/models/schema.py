"""JSON schemas (draft-04, the dialect API Gateway models use) of the request bodies.

These dicts are the single source of truth: `models/validation.py` interprets them, and the
SAM template's API Gateway models mirror them (`python -c "import json, orders.models.schema as s;
print(json.dumps(s.ORDER_REQUEST_SCHEMA))"` prints one). Change a limit here and nowhere else.
"""

from __future__ import annotations

from typing import Any, Final

MAX_BODY_BYTES: Final = 16 * 1024
MAX_ITEMS: Final = 25
MAX_QUANTITY: Final = 1000
MAX_UNIT_PRICE: Final = 100_000

# Prices must be storable in DynamoDB (at most 38 significant digits, magnitude 1E-130 to 9.99E+125)
# and so must every total: a price has at most PRICE_DECIMAL_PLACES decimal places, so with the
# limits above a total has at most 16 significant digits. API Gateway's draft-04 models cannot
# say this, so `models/validation.py` checks it after the schema (docs/decisions/0022-*.md).
PRICE_DECIMAL_PLACES: Final = 6

ORDER_ID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
IDEMPOTENCY_KEY_PATTERN: Final = r"^[A-Za-z0-9_.:-]{1,128}$"

# A content type maps to the file-name extensions it may carry, so the type recorded
# from the extension after upload is the one the presigned policy enforced.
ATTACHMENT_CONTENT_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "application/pdf": (".pdf",),
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
}

ORDER_REQUEST_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "OrderRequest",
    "type": "object",
    "required": ["customerId", "items", "currency"],
    "additionalProperties": False,
    "properties": {
        "customerId": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
        "currency": {"type": "string", "pattern": r"^[A-Z]{3}$"},
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_ITEMS,
            "items": {
                "type": "object",
                "required": ["sku", "quantity", "unitPrice"],
                "additionalProperties": False,
                "properties": {
                    "sku": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
                    "unitPrice": {
                        "type": "number",
                        "minimum": 0,
                        "exclusiveMinimum": True,
                        "maximum": MAX_UNIT_PRICE,
                    },
                },
            },
        },
    },
}

ATTACHMENT_REQUEST_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "AttachmentRequest",
    "type": "object",
    "required": ["fileName", "contentType"],
    "additionalProperties": False,
    "properties": {
        "fileName": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"},
        "contentType": {"type": "string", "enum": sorted(ATTACHMENT_CONTENT_TYPES)},
    },
}
