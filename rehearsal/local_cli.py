"""`rehearsal local`: run the service offline (filled in by the local runtime work)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("local", help="run the service offline")
    parser.set_defaults(run=lambda _args: 1)
