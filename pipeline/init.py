"""`make init`: a team's values into cdk.json and its service name where the template carries one.

Asks each question on a terminal (or takes it as a flag, for automation: `--non-interactive` asks
nothing), checks every answer as it is given with pipeline/config.py's own rules, computes every
new file first and writes them only at the end (temp file + os.replace per file). A refused value,
Ctrl-C or end of input leaves every file as it was. The same answers always give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import (
    CANARY_TYPES,
    COMMIT_PLACEHOLDER,
    EXAMPLE_ACCOUNTS,
    ConfigError,
    PipelineConfig,
    parse_value,
)

ROOT = Path(__file__).resolve().parents[1]
# S3: "Bucket names must be between 3 (min) and 63 (max) characters long" (ADR 0025).
MAX_BUCKET_NAME = 63
RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
# The longest of the three environment names, and the account id, fill the rest of the bucket name.
BUCKET_NAME = "{service}-attachments-{account}-{region}-production"
EXIT_REFUSED = 2
EXIT_STOPPED = 130

Answer = str | int | tuple[str, ...]


class InitError(Exception):
    """A refused value or a file the rename does not recognise; the message is one line with the fix."""


@dataclass(frozen=True, kw_only=True)
class Question:
    """One value a team sets: its cdk.json context key, its flag, and the prompt a person reads."""

    key: str
    prompt: str

    @property
    def flag(self) -> str:
        return "--" + re.sub(r"(?<!^)([A-Z])", r"-\1", self.key).lower()


QUESTIONS = (
    Question(key="serviceName", prompt="Service name (stack names, pipeline name, resource prefixes)"),
    Question(key="repository", prompt="Source repository (owner/name)"),
    Question(key="branch", prompt="Branch that releases"),
    Question(key="connectionArn", prompt="CodeConnections connection ARN"),
    Question(key="pipelineAccount", prompt="Pipeline account id"),
    Question(key="pipelineRegion", prompt="Region (pipeline, staging and production)"),
    Question(key="stagingAccount", prompt="Staging account id (the pipeline's is fine)"),
    Question(key="stagingRegion", prompt="Staging region"),
    Question(key="productionAccount", prompt="Production account id (the pipeline's is fine)"),
    Question(key="productionRegion", prompt="Production region"),
    Question(key="releaseManagerEmails", prompt="Release-manager e-mails (comma-separated)"),
    Question(key="notificationEmails", prompt="Release-notification e-mails (comma-separated)"),
    Question(key="approverPrincipals", prompt="Approver role or user ARNs (comma-separated)"),
    Question(key="stagingCanaryType", prompt="Staging canary type"),
    Question(key="stagingBakeMinutes", prompt="Staging bake minutes"),
    Question(key="productionCanaryType", prompt="Production canary type"),
    Question(key="productionBakeMinutes", prompt="Production bake minutes"),
    Question(key="reviewUrl", prompt="Review URL for approvers, with {commitId}"),
    Question(key="bootstrapQualifier", prompt="cdk bootstrap qualifier"),
)


@dataclass(frozen=True, kw_only=True)
class Rename:
    """A place in a file that carries the service name: `pattern` matches the name, `count` times."""

    path: str
    pattern: str
    replacement: str
    count: int


# Only these carry the service name; `orders` as the domain (the Python package, the /orders route,
# the orders/ key prefix, OrdersTable and friends) stays. Stack and pipeline names come from
# serviceName in cdk.json (pipeline/config.py), so they follow without a rename here.
RENAMES = (
    Rename(
        path="service/template.yaml",
        pattern=r"(?<![A-Za-z0-9-])[a-z0-9-]+(?=-attachments-\$\{AWS::AccountId\})",
        replacement="{service}",
        count=4,
    ),
    Rename(
        path="service/template.yaml",
        pattern=r"(?<=\n  ServiceName:\n    Type: String\n    Default: )\S+",
        replacement="{service}",
        count=1,
    ),
    Rename(path="README.md", pattern=r"\A# [^\n]*", replacement="# {service}", count=1),
)


@dataclass(frozen=True, kw_only=True)
class FileChange:
    """One file's new content, computed before anything is written."""

    path: Path
    content: str


def _as_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def _github_review_url(repository: Any) -> str:
    return f"https://github.com/{repository}/commit/{COMMIT_PLACEHOLDER}"


def default_for(key: str, current: Mapping[str, Any], answers: Mapping[str, Answer]) -> Any:
    """What Enter keeps: cdk.json's value, or one derived from earlier answers where cdk.json holds
    the shipped example (so one account for everything is three presses of Enter)."""
    value = current.get(key)
    if key in ("stagingAccount", "productionAccount") and (value is None or value in EXAMPLE_ACCOUNTS):
        return answers.get("pipelineAccount", value)
    if key in ("stagingRegion", "productionRegion") and value == current.get("pipelineRegion"):
        return answers.get("pipelineRegion", value)
    if key == "approverPrincipals" and isinstance(value, list) and "pipelineAccount" in answers:
        old, new = f":{current.get('pipelineAccount')}:", f":{answers['pipelineAccount']}:"
        return [item.replace(old, new) for item in value]
    if key == "reviewUrl" and value == _github_review_url(current.get("repository")):
        return _github_review_url(answers.get("repository", current.get("repository")))
    return value


def check_answer(key: str, raw: Any, current: Mapping[str, Any], answers: Mapping[str, Answer]) -> Answer:
    """The value in its cdk.json type, or ConfigError naming the key and the fix."""
    value = parse_value(key, raw)
    known = {**current, **answers, key: value}
    if key in ("serviceName", "pipelineRegion"):
        _check_bucket_name(key, known)
    if key in ("stagingRegion", "productionRegion") and value != known.get("pipelineRegion"):
        _check_with_config(key, known)
    return value


def _check_bucket_name(key: str, known: Mapping[str, Any]) -> None:
    """The attachments bucket name holds the service name: S3 allows 63 characters (ADR 0025)."""
    service, region = str(known.get("serviceName")), str(known.get("pipelineRegion"))
    name = BUCKET_NAME.format(service=service, account="0" * 12, region=region)
    reserved = next((prefix for prefix in RESERVED_BUCKET_PREFIXES if name.startswith(prefix)), None)
    if reserved:
        raise ConfigError(
            f"{key}={known[key]!r} starts the attachments bucket name with {reserved!r}, "
            "which S3 reserves: choose a service name that does not start with it"
        )
    if len(name) > MAX_BUCKET_NAME:
        longest = len(service) - (len(name) - MAX_BUCKET_NAME)
        raise ConfigError(
            f"{key}={known[key]!r} makes the attachments bucket name {name!r} {len(name)} characters "
            f"long (S3 allows {MAX_BUCKET_NAME}): use a service name of at most {longest} characters"
        )


def _check_with_config(key: str, known: Mapping[str, Any]) -> None:
    """Checks that span keys stay in config.py: run it and report what it says about `key`."""
    try:
        PipelineConfig.from_context(known)
    except ConfigError as error:
        if str(error).startswith(key):
            raise


@dataclass(frozen=True, kw_only=True)
class Collected:
    """Every question's value, each already checked."""

    values: dict[str, Answer]


Ask = Callable[[str], str]


def collect(
    current: Mapping[str, Any],
    flags: Mapping[str, str | None],
    *,
    ask: Ask | None = None,
    out: Callable[[str], None] = print,
) -> Collected:
    """A flag answers its question (refused: InitError naming the flag); without `ask` the rest take
    their defaults, with it each is asked until its answer passes (Enter keeps the default shown)."""
    answers: dict[str, Answer] = {}
    if ask is not None:
        out(f"Canary types CodeDeploy offers: {', '.join(sorted(CANARY_TYPES))}")
    for question in QUESTIONS:
        default = default_for(question.key, current, answers)
        given = flags.get(question.key)
        if given is not None or ask is None:
            try:
                answers[question.key] = check_answer(
                    question.key, default if given is None else given, current, answers
                )
            except ConfigError as error:
                raise InitError(f"{question.flag}: {error}") from None
            continue
        answers[question.key] = _ask_until_accepted(
            question, default=default, current=current, answers=answers, ask=ask, out=out
        )
    return Collected(values=answers)


def _ask_until_accepted(
    question: Question,
    *,
    default: Any,
    current: Mapping[str, Any],
    answers: Mapping[str, Answer],
    ask: Ask,
    out: Callable[[str], None],
) -> Answer:
    while True:
        typed = ask(f"{question.prompt} [{_as_text(default)}]: ").strip()
        try:
            return check_answer(question.key, typed or default, current, answers)
        except ConfigError as error:
            out(f"  refused: {error}")


def cdk_json_content(text: str, values: Mapping[str, Answer]) -> str:
    """cdk.json with the context values replaced in place: its layout and other keys are kept."""
    for key, value in values.items():
        text = _with_context_line(text, key, json.dumps(list(value) if isinstance(value, tuple) else value))
    return text


def _with_context_line(text: str, key: str, rendered: str) -> str:
    """Replace one value where it stands (whatever its layout); everything around it is kept."""
    found = re.search(rf'"{re.escape(key)}"\s*:\s*', text)
    if found is None:
        # A key the team deleted (it had a default) comes back as the context's first line.
        return re.sub(
            r'("context"\s*:\s*\{[ \t]*\n)', lambda m: f'{m[1]}    "{key}": {rendered},\n', text, count=1
        )
    try:
        _, end = json.JSONDecoder().raw_decode(text, found.end())
    except json.JSONDecodeError as error:
        raise InitError(f"cdk.json is not valid JSON ({error}): fix it or restore it with git") from None
    return text[: found.end()] + rendered + text[end:]


def _check_cdk_json(before: str, after: str, values: Mapping[str, Answer]) -> None:
    """The new cdk.json parses and differs from the old only in the team's values."""
    try:
        old, new = json.loads(before), json.loads(after)
    except json.JSONDecodeError as error:
        raise InitError(f"cdk.json is not valid JSON ({error}): fix it or restore it with git") from None
    expected = {**old, "context": {**old.get("context", {})}}
    for key, value in values.items():
        expected["context"][key] = list(value) if isinstance(value, tuple) else value
    if new != expected:
        raise InitError("cdk.json would change beyond your values: restore it with git checkout cdk.json")


def renamed(text: str, rename: Rename, service: str) -> str:
    new, found = re.subn(rename.pattern, rename.replacement.format(service=service), text, flags=re.MULTILINE)
    if found != rename.count:
        raise InitError(
            f"{rename.path}: expected the service name {rename.count} time(s) at /{rename.pattern}/, "
            f"found {found}: restore the file with git or update RENAMES in pipeline/init.py"
        )
    return new


def plan_changes(root: Path, collected: Collected) -> list[FileChange]:
    """Every changed file's new content; nothing is written here."""
    contents: dict[str, str] = {}
    cdk_json = (root / "cdk.json").read_text()
    contents["cdk.json"] = cdk_json_content(cdk_json, collected.values)
    _check_cdk_json(cdk_json, contents["cdk.json"], collected.values)
    context = json.loads(contents["cdk.json"])["context"]
    try:
        PipelineConfig.from_context(context)
    except ConfigError as error:
        key = next((q for q in QUESTIONS if str(error).startswith(q.key)), None)
        raise InitError(f"{key.flag}: {error}" if key else str(error)) from None
    service = str(collected.values["serviceName"])
    for rename in RENAMES:
        text = contents.get(rename.path) or (root / rename.path).read_text()
        contents[rename.path] = renamed(text, rename, service)
    return [
        FileChange(path=root / name, content=text)
        for name, text in contents.items()
        if (root / name).read_text() != text
    ]


def write_all(changes: Sequence[FileChange]) -> None:
    """Each file replaced whole (os.replace is atomic on one file system), keeping its mode."""
    for change in changes:
        mode = change.path.stat().st_mode
        handle, temporary = tempfile.mkstemp(dir=change.path.parent, prefix=f".{change.path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
                stream.write(change.content)
            os.chmod(temporary, mode)
            os.replace(temporary, change.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _current_context(root: Path) -> dict[str, Any]:
    try:
        context = json.loads((root / "cdk.json").read_text()).get("context")
    except (OSError, json.JSONDecodeError, AttributeError) as error:
        raise InitError(f"cdk.json cannot be read ({error}): restore it with git checkout cdk.json") from None
    if not isinstance(context, dict):
        raise InitError("cdk.json has no context object: restore it with git checkout cdk.json")
    return context


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make init", description=__doc__.splitlines()[0])
    parser.add_argument("--non-interactive", action="store_true", help="ask nothing: flags, else defaults")
    for question in QUESTIONS:
        parser.add_argument(question.flag, dest=question.key, metavar="VALUE", help=question.prompt)
    return parser


def main(argv: Sequence[str] | None = None, *, root: Path = ROOT, ask: Ask | None = None) -> int:
    """Exit 0 when written (or nothing to change), 2 when refused, 130 when stopped."""
    arguments = vars(_parser().parse_args(argv))
    interactive = not arguments.pop("non_interactive") and (ask is not None or sys.stdin.isatty())
    try:
        current = _current_context(root)
        collected = collect(current, arguments, ask=(ask or input) if interactive else None)
        changes = plan_changes(root, collected)
    except InitError as error:
        print(f"make init: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except (KeyboardInterrupt, EOFError):
        print("\nmake init: stopped; no file was changed", file=sys.stderr)
        return EXIT_STOPPED
    write_all(changes)
    names = ", ".join(str(change.path.relative_to(root)) for change in changes) or "nothing (already so)"
    print(f"make init: wrote {names}. Next: review with git diff, then git commit and git push.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
