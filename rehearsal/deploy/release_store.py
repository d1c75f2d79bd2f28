"""What the local deployer keeps between releases, and what it reads from a provisioned stack.

moto's state dies with its process, so an environment cannot simply stay up between two
`make release` runs. The deployer keeps, per environment, the releases it deployed under
`.rehearsal/deployer/<environment>/`: the packaged template rewritten to point at its code zips
(downloaded from the artifact bucket), the parameters and the commit. A later release starts the
environment again from the release it last deployed, then canaries from it to the new one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal.base.clock import timestamp
from rehearsal.base.errors import UserError
from rehearsal.cloud.server import LocalCloud
from rehearsal.cloud.template import load_template

TEMPLATE_FILE = "template.json"
RECORD_FILE = "release.json"


@dataclass(frozen=True)
class SavedRelease:
    """One release of an environment as the deployer stored it."""

    directory: Path
    commit: str
    stack_name: str
    parameters: dict[str, str]

    @property
    def template(self) -> Path:
        return self.directory / TEMPLATE_FILE


class ReleaseStore:
    """`<root>/<environment>/releases/<n>/` plus `pointers.json` naming the current and previous one."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _pointers_path(self, environment: str) -> Path:
        return self.root / environment / "pointers.json"

    def _pointers(self, environment: str) -> dict[str, str | None]:
        path = self._pointers_path(environment)
        if not path.is_file():
            return {"current": None, "previous": None}
        loaded: dict[str, str | None] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    def _load(self, directory: str | None) -> SavedRelease | None:
        if directory is None or not (Path(directory) / RECORD_FILE).is_file():
            return None
        record = json.loads((Path(directory) / RECORD_FILE).read_text(encoding="utf-8"))
        return SavedRelease(
            directory=Path(directory),
            commit=str(record["commit"]),
            stack_name=str(record["stack_name"]),
            parameters=dict(record["parameters"]),
        )

    def current(self, environment: str) -> SavedRelease | None:
        return self._load(self._pointers(environment)["current"])

    def stage(
        self,
        environment: str,
        *,
        packaged_template: Path,
        commit: str,
        stack_name: str,
        parameters: Mapping[str, str],
        tooling: LocalCloud | None,
    ) -> SavedRelease:
        """Copy a packaged template and its code out of the artifact bucket into a new release folder."""
        releases = self.root / environment / "releases"
        releases.mkdir(parents=True, exist_ok=True)
        number = 1 + max((int(p.name) for p in releases.iterdir() if p.name.isdigit()), default=0)
        directory = releases / str(number)
        (directory / "code").mkdir(parents=True)
        document = load_template(packaged_template)
        downloads: dict[str, str] = {}

        def localize(properties: dict[str, Any]) -> None:
            uri = properties.get("CodeUri")
            if not (isinstance(uri, str) and uri.startswith("s3://")):
                return
            if uri not in downloads:
                bucket, _, key = uri.removeprefix("s3://").partition("/")
                target = directory / "code" / f"{len(downloads) + 1}.zip"
                if tooling is None:
                    raise UserError(f"{uri}: no build ran in this release, so no artifact bucket holds it")
                try:
                    tooling.client("s3").download_file(bucket, key, str(target))
                except Exception as error:  # botocore's ClientError, a missing bucket
                    raise UserError(f"cannot download {uri} from the artifact bucket: {error}") from error
                downloads[uri] = f"code/{target.name}"
            properties["CodeUri"] = downloads[uri]

        for resource in (document.get("Resources") or {}).values():
            if resource.get("Type") == "AWS::Serverless::Function":
                localize(resource.setdefault("Properties", {}))
        (directory / TEMPLATE_FILE).write_text(json.dumps(document, indent=1), encoding="utf-8")
        record = {
            "commit": commit,
            "stack_name": stack_name,
            "parameters": dict(parameters),
            "packaged_from": {uri: path for uri, path in downloads.items()},
            "staged_at": timestamp(),
        }
        (directory / RECORD_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        return SavedRelease(directory, commit, stack_name, dict(parameters))

    def promote(self, environment: str, release: SavedRelease) -> None:
        """`release` now serves the environment; the one before it is kept for a rollback."""
        pointers = self._pointers(environment)
        self._write(environment, {"current": str(release.directory), "previous": pointers["current"]})

    def demote(self, environment: str) -> SavedRelease | None:
        """A rollback: the previous release serves again (and is returned); None when there was none."""
        pointers = self._pointers(environment)
        previous = self._load(pointers["previous"])
        if previous is not None:
            self._write(environment, {"current": str(previous.directory), "previous": None})
        return previous

    def discard(self, release: SavedRelease) -> None:
        shutil.rmtree(release.directory, ignore_errors=True)

    def _write(self, environment: str, pointers: dict[str, str | None]) -> None:
        path = self._pointers_path(environment)
        path.write_text(json.dumps(pointers, indent=2), encoding="utf-8")
        kept = {value for value in pointers.values() if value}
        for folder in (self.root / environment / "releases").iterdir():
            if str(folder) not in kept:
                shutil.rmtree(folder, ignore_errors=True)
