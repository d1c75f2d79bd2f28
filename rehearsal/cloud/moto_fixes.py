"""Fixes to moto inside the local cloud's server process, each for a cost AWS does not have.

DynamoDB TransactWriteItems: moto 5.2 deep-copies every table a transaction names before writing,
to roll back a cancelled transaction, so each transaction costs time and memory in proportion to
the whole tables (300 single-item transactions grew the server by 89 MB; ADR 0052). Here the
rollback keeps a copy of only the items the transaction names and puts them back when it is
cancelled: the same all-or-nothing outcome, at a cost independent of the tables' size. (A
cancelled transaction's writes may leave records in a table's stream, which moto's copy undid.)
This runs in the server child, which coverage does not follow; tests/rehearsal/test_moto_fixes.py
checks it through the server.

Per-request overhead: moto's server lists its own package directory (a `listdir` and ~170 `isdir`
calls) on every request to recognise a service name, and werkzeug formats an access-log line for
every request that nobody reads (the child's stderr is discarded). The list is read once here, and
the log line is not written (tests/rehearsal/test_deployer.py, one pair of runs on a quiet machine: the
server's CPU 39.8 s before, 36.0 s after, for ~8,800 requests; ADR 0061).

AWS managed policies: moto parses its 1 MB list of them again for every IAM backend it creates (each
account's first request, each reset) and builds ~1,600 policy objects from it, each with a random id
and its document serialized again. Here the objects are built once per process and partition, and
every backend gets its own copies (their tags, versions and attachment counts are its own). The
copies share each policy's id, as AWS managed policies have one id everywhere.
tests/infra/test_bootstrap_policy.py applies this fix too (its in-process moto resets IAM for every
test, building the policies twice per test): the parse was 40 % of that module's CPU, then the
building half of it.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

Saved = list[tuple[Any, Any, Any, Any]]  # (table, hash key, range key, the item before, or None)
# AWS managed policies as moto builds them, per partition: each IAM backend gets copies.
_BUILT_POLICIES: dict[str, tuple[Any, ...]] = {}


class _TablesByReference:  # pragma: no cover - server child
    """The `copy` module as moto's dynamodb models see it, except that a Table is not deep-copied."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, self._table_type) else copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def apply() -> None:  # pragma: no cover - server child
    """Patch moto in this process (the server child calls it once, at start)."""
    _patch_transactions()
    _patch_request_overhead()
    parse_managed_policies_once()


def parse_managed_policies_once() -> None:
    """Patch moto's IAM so that its AWS managed policies are parsed and built once per process."""
    from moto.iam import models  # noqa: PLC0415 - moto is loaded only where a cloud runs
    from moto.settings import load_iam_aws_managed_policies  # noqa: PLC0415
    from moto.utilities.utils import get_partition  # noqa: PLC0415

    def prototypes(region_name: str) -> tuple[Any, ...]:
        partition = get_partition(region_name)
        if partition not in _BUILT_POLICIES:
            _BUILT_POLICIES[partition] = tuple(
                models.AWSManagedPolicy.from_data(name, "aws", region_name, data)
                for name, data in _managed_policies().items()
            )
        return _BUILT_POLICIES[partition]

    def own_copy(policy: Any, account_id: str) -> Any:
        copied = _shallow_copy(policy)
        copied.account_id = account_id
        copied.tags = dict(policy.tags)
        copied.versions = [_shallow_copy(version) for version in policy.versions]
        return copied

    def _init_aws_policies(self: Any) -> list[Any]:
        if not load_iam_aws_managed_policies():
            return []
        return [own_copy(policy, self.account_id) for policy in prototypes(self.region_name)]

    models.IAMBackend._init_aws_policies = _init_aws_policies  # type: ignore[method-assign]


def _shallow_copy(model: Any) -> Any:
    """`copy.copy` of a plain moto model (no `__copy__`, no slots), without its pickle protocol's cost:
    each new account copies ~1,600 managed policies and their versions (6x faster, measured)."""
    copied = object.__new__(type(model))
    copied.__dict__.update(model.__dict__)
    return copied


def _patch_request_overhead() -> None:  # pragma: no cover - server child
    from moto import backends  # noqa: PLC0415 - only the server child has moto loaded
    from werkzeug.serving import WSGIRequestHandler  # noqa: PLC0415

    modules = tuple(backends.list_of_moto_modules())
    setattr(backends, "list_of_moto_modules", lambda: modules)  # noqa: B010 - the name werkzeug_app calls
    setattr(WSGIRequestHandler, "log_request", lambda *_args: None)  # noqa: B010 - an access log nobody reads


def _patch_transactions() -> None:  # pragma: no cover - server child
    from moto.dynamodb import models  # noqa: PLC0415 - only the server child has moto loaded
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    setattr(models, "copy", _TablesByReference(Table))  # noqa: B010 - the module's own name `copy`
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = _save_items(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            _restore_items(saved)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _save_items(
    backend: Any, transact_items: list[dict[str, Any]]
) -> Saved:  # pragma: no cover - server child
    """A deep copy of each item the transaction names (None where there is none yet)."""
    saved: Saved = []
    for entry in transact_items:
        for operation, request in entry.items():
            table = backend.tables.get(request.get("TableName"))
            if table is None:
                continue  # moto refuses the transaction itself
            keys = _keys(backend, table, operation, request)
            if keys is not None:  # else malformed: moto refuses the transaction before writing
                item = table.get_item(*keys)
                saved.append((table, *keys, copy.deepcopy(item)))
    return saved


def _keys(
    backend: Any, table: Any, operation: str, request: dict[str, Any]
) -> tuple[Any, Any] | None:  # pragma: no cover - server child
    """(hash key, range key) of the item an operation names, as moto reads them; None if malformed."""
    try:
        key = request["Key"] if operation != "Put" else _key_of(table, request["Item"])
        keys: tuple[Any, Any] = backend.get_keys_value(table, key)
    except Exception:  # moto's own validation answers a malformed key
        return None
    return keys


def _key_of(table: Any, item: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - server child
    key = {table.hash_key_attr: item[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = item[table.range_key_attr]
    return key


def _restore_items(
    saved: Saved,
) -> None:  # pragma: no cover - server child
    """Put every saved item back as it was, in reverse order; remove those that did not exist."""
    for table, hash_key, range_key, item in reversed(saved):
        if range_key is not None:
            if item is None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items.setdefault(hash_key, {})[range_key] = item
        elif item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item


@functools.cache
def _managed_policies() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data  # noqa: PLC0415

    parsed: dict[str, Any] = json.loads(aws_managed_policies_data)
    return parsed
