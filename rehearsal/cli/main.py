"""Command line of the rehearsal: `local`, `release`, `release-remote`, `approve`, `reject`, `status`.

Each group of commands registers its own sub-commands; this module only dispatches and turns
user mistakes (`UserError`) into one clear line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rehearsal.base.errors import UserError
from rehearsal.cli import local as local_cli
from rehearsal.cli import release as release_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rehearsal", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local_cli.register(commands)
    release_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result
