"""`rehearsal release|release-remote|approve|reject|status` (filled in by the release runner work)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    for name in ("release", "release-remote", "approve", "reject", "status"):
        parser: argparse.ArgumentParser = commands.add_parser(name)
        parser.set_defaults(run=lambda _args: 1)
