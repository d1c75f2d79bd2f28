"""How one buildspec phase runs: one bash script, so its commands share a shell, as in CodeBuild.

The script runs the commands in order and stops at the first failure, then runs `finally`; an EXIT
trap records the failing command and its status, runs `finally` even after an `exit`, and dumps
the environment (`env -0`) so the next phase starts where this one left off, directory included.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

_SHELL_INTERNALS = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})


def phase_script(
    commands: Sequence[str], finally_commands: Sequence[str], env_dump: Path, status_file: Path
) -> str:
    """One bash script per phase: commands share the shell; the first failure stops them, `finally` runs."""
    dump = shlex.quote(str(env_dump))
    status = shlex.quote(str(status_file))
    finally_body = [line for command in finally_commands for line in _guarded(command, skip_if_failed=False)]
    lines = [
        f"__rehearsal_dump() {{ env -0 > {dump}; }}",
        f'__rehearsal_fail() {{ printf \'%s\\n%s\' "$1" "$2" > {status}; }}',
        "__rehearsal_finally_done=0",
        "__rehearsal_finally() {",
        "__rehearsal_finally_done=1",
        *finally_body,
        ":",
        "}",
        # A command that calls `exit` ends the shell: the trap records it, still runs `finally`, and
        # dumps the environment.
        "trap '__rc=$?; if [ $__rc -ne 0 ] && [ ! -s " + status + " ]; then "
        'printf "[Container] Command did not exit successfully %s exit status %s\\n" '
        '"$__rehearsal_current" $__rc; __rehearsal_fail $__rc "$__rehearsal_current"; fi; '
        "if [ $__rehearsal_finally_done -eq 0 ]; then __rehearsal_failed=1; __rehearsal_finally; fi; "
        "__rehearsal_dump' EXIT",
        "__rehearsal_failed=0",
    ]
    for command in commands:
        lines += _guarded(command, skip_if_failed=True)
    lines += ["__rehearsal_finally", "exit 0"]
    return "\n".join(lines) + "\n"


def _guarded(command: str, *, skip_if_failed: bool) -> list[str]:
    quoted = shlex.quote(command)
    body = [
        f"__rehearsal_current={quoted}",
        f"printf '[Container] Running command %s\\n' {quoted}",
        command,
        "__rc=$?",
        "if [ $__rc -ne 0 ]; then",
        f"  printf '[Container] Command did not exit successfully %s exit status %s\\n' {quoted} $__rc",
        '  if [ $__rehearsal_failed -eq 0 ]; then __rehearsal_fail $__rc "$__rehearsal_current"; fi',
        "  __rehearsal_failed=1",
        "fi",
    ]
    if not skip_if_failed:
        return body
    return ["if [ $__rehearsal_failed -eq 0 ]; then", ":", *body, "fi"]


def read_env_dump(path: Path, *, fallback: tuple[dict[str, str], Path]) -> tuple[dict[str, str], Path]:
    if not path.exists():
        return fallback
    environment: dict[str, str] = {}
    for entry in path.read_bytes().split(b"\0"):
        name, separator, value = entry.decode("utf-8", "replace").partition("=")
        if separator and name and not name.startswith("__rehearsal") and name != "__rc":
            environment[name] = value
    cwd = Path(environment.get("PWD", str(fallback[1])))
    for name in _SHELL_INTERNALS:
        environment.pop(name, None)
    return environment, cwd


def read_status(path: Path, returncode: int) -> tuple[str | None, int]:
    if path.exists() and path.read_text(encoding="utf-8").strip():
        status, _, command = path.read_text(encoding="utf-8").partition("\n")
        return command, int(status)
    if returncode != 0:
        return "(the phase's shell)", returncode
    return None, 0
