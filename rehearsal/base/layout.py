"""The one home of the `.rehearsal/` layout: every path a release, the deployer or the CLI keeps.

.rehearsal/
  state.json                  per environment, the commit serving 100% of its traffic (across runs)
  release.lock                a second release queues behind the running one
  pipeline/assembly/          the pipeline definition deployed offline (last self-mutation)
  approvals/                  the approval inbox (`make approve` / `make reject`)
  deployer/<environment>/     releases the deployer kept, and the runtime's log
  runs/<id>/summary.json      result, stages and actions, approvals, environments
  runs/<id>/logs/, artifacts/, reports/, workspaces/
  runs/latest -> <id>
  remote.git/                 `make release-remote`: a push to it starts a release
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_FOLDER = ".rehearsal"


@dataclass(frozen=True, kw_only=True)
class StateLayout:
    root: Path  # the `.rehearsal/` folder itself

    @classmethod
    def of_repo(cls, repo: Path) -> StateLayout:
        return cls(root=repo / STATE_FOLDER)

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / "release.lock"

    @property
    def pipeline_assembly(self) -> Path:
        return self.root / "pipeline" / "assembly"

    @property
    def approvals(self) -> Path:
        return self.root / "approvals"

    @property
    def deployer(self) -> Path:
        return self.root / "deployer"

    def runtime_log(self, environment: str) -> Path:
        return self.deployer / environment / "runtime.log"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, run_id: str) -> Path:
        return self.runs / run_id

    @property
    def latest_summary(self) -> Path:
        return self.runs / "latest" / "summary.json"

    @property
    def remote(self) -> Path:
        return self.root / "remote.git"
