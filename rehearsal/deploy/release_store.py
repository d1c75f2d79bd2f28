"""What the local deployer keeps between releases, and what it reads from a provisioned stack.

moto's state dies with its process, so an environment cannot simply stay up between two
`make release` runs. The deployer keeps, per environment, the releases it deployed under
`.rehearsal/deployer/<environment>/`: the packaged template rewritten to point at its code zips
(downloaded from the artifact bucket), the parameters and the commit. A later release starts the
environment again from the release it last deployed, then canaries from it to the new one.

While a deployment shifts traffic, `<environment>/in-flight.json` names the release it shifts
from and the one it shifts to (written before the shift, removed when the deployment ends either
way). A runner killed mid-shift leaves it behind: `recover()` then puts the environment back on
the release it shifted from, the last one promoted (docs/decisions/0055-interrupted-releases.md).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rehearsal.base.clock import timestamp
from rehearsal.base.errors import UserError
from rehearsal.cloud.server import LocalCloud
from rehearsal.cloud.template import load_template
from rehearsal.release.deploy_port import RecoveredEnvironment

TEMPLATE_FILE = "template.json"
RECORD_FILE = "release.json"
IN_FLIGHT_FILE = "in-flight.json"


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


@dataclass(frozen=True, kw_only=True)
class InFlight:
    """A deployment under way in one environment: what `in-flight.json` holds until it ends."""

    environment: str
    from_commit: str  # the release serving before the deployment: the last one promoted
    from_release: str  # its folder
    to_commit: str  # the release being deployed, staged but not promoted
    to_release: str
    started_at: str  # base.clock.timestamp()


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

    # ------------------------------------------------------------ deployments in flight

    def _in_flight_path(self, environment: str) -> Path:
        return self.root / environment / IN_FLIGHT_FILE

    def begin(self, environment: str, *, serving: SavedRelease, staged: SavedRelease) -> None:
        """Before traffic moves: a crash from here on leaves this record for `recover()` to find."""
        record = InFlight(
            environment=environment,
            from_commit=serving.commit,
            from_release=str(serving.directory),
            to_commit=staged.commit,
            to_release=str(staged.directory),
            started_at=timestamp(),
        )
        _write_json(self._in_flight_path(environment), asdict(record))

    def end(self, environment: str) -> None:
        """The deployment ended (promoted or rolled back): nothing is left to recover."""
        self._in_flight_path(environment).unlink(missing_ok=True)

    def in_flight(self) -> list[InFlight]:
        """Deployments whose runner stopped before they ended (only while no release runs)."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob(f"*/{IN_FLIGHT_FILE}")):
            document = json.loads(path.read_text(encoding="utf-8"))
            found.append(InFlight(**{f.name: str(document[f.name]) for f in fields(InFlight)}))
        return found

    def recover(self, interrupted: InFlight) -> RecoveredEnvironment:
        """Put the environment back on the release it shifted from, as a rollback would have.

        The local cloud died with the runner, so no alias is left half-shifted in a running
        cloud; what must not survive is the saved state naming the interrupted release: a
        promotion that happened before the crash is undone, the staged folder discarded.
        """
        environment = interrupted.environment
        pointers = self._pointers(environment)
        if pointers["current"] == interrupted.to_release:
            self._write(environment, {"current": interrupted.from_release, "previous": None})
        if self._pointers(environment)["current"] != interrupted.to_release:
            shutil.rmtree(interrupted.to_release, ignore_errors=True)
        self.end(environment)
        return RecoveredEnvironment(
            environment=environment, serving=interrupted.from_commit, abandoned=interrupted.to_commit
        )

    def _write(self, environment: str, pointers: dict[str, str | None]) -> None:
        _write_json(self._pointers_path(environment), pointers)
        kept = {value for value in pointers.values() if value}
        for folder in (self.root / environment / "releases").iterdir():
            if str(folder) not in kept:
                shutil.rmtree(folder, ignore_errors=True)


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write through a temporary file and a rename: a process killed mid-write leaves the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2), encoding="utf-8")
    temporary.replace(path)
