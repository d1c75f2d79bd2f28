"""The rehearsal's command line: `local`, `release`, `release-remote`, `approve`, `reject`, `status`,
`diagram`.

Each group of commands registers its own sub-commands; this module only dispatches and turns
user mistakes (`UserError`) into one clear line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rehearsal.base.errors import UserError
from rehearsal.cli import diagram as diagram_cli
from rehearsal.cli import local as local_cli
from rehearsal.cli import release as release_cli
from rehearsal.cli.release import DeployerFactory
from rehearsal.deploy.deployer import LocalDeployer


def build_parser(*, deployer_factory: DeployerFactory = LocalDeployer) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rehearsal", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local_cli.register(commands)
    release_cli.register(commands, deployer_factory=deployer_factory)
    diagram_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, deployer_factory: DeployerFactory = LocalDeployer) -> int:
    """The composition root: `deployer_factory` is the one seam tests replace (with an in-memory fake)."""
    args = build_parser(deployer_factory=deployer_factory).parse_args(argv)
    try:
        result: int = args.run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result
