"""`make init`: each value checked with its reason, the files written only whole and only at the end,
the same answers giving the same bytes, and a renamed copy of the repository that still synthesizes.

Most tests run `pipeline.init.main` on a scratch folder holding copies of the three files it edits
(milliseconds each). One runs it on a real terminal (a pty, about 1 s). The last one runs `make init`
and `make synth` on a full copy of the repository and the renamed service's template checks there
(about 60-90 s on 2 cores): it carries the `another_team` marker, so `make test` runs it and
`make check` (the pipeline's Build) does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline import init
from pipeline.config import CANARY_TYPES, ConfigError, parse_value
from tests.infra.conftest import ROOT

EDITED = ("cdk.json", "service/template.yaml", "README.md")
TEAM_FLAGS = [
    "--non-interactive",
    "--service-name=ledger",
    "--repository=globex/ledger",
    "--branch=trunk",
    "--connection-arn=arn:aws:codeconnections:eu-west-1:700000000001:connection/"
    "9b2f4e1a-7c3d-4e5f-8a9b-0c1d2e3f4a5b",
    "--pipeline-account=700000000001",
    "--release-manager-emails=release@globex.test,oncall@globex.test",
    "--approver-principals=arn:aws:iam::700000000001:role/LedgerReleaseManagers",
    "--production-canary-type=Linear10PercentEvery2Minutes",
    "--production-bake-minutes=30",
]


# The template as shipped; the `root` fixture starts from it, so these tests also pass in a
# repository where a team has already run make init.
SHIPPED = {
    "serviceName": "orders",
    "repository": "example-org/serverless-release-pipeline",
    "branch": "main",
    "connectionArn": "arn:aws:codeconnections:eu-west-1:111111111111:connection/"
    "00000000-0000-0000-0000-000000000000",
    "pipelineAccount": "111111111111",
    "pipelineRegion": "eu-west-1",
    "stagingAccount": "222222222222",
    "stagingRegion": "eu-west-1",
    "productionAccount": "333333333333",
    "productionRegion": "eu-west-1",
    "releaseManagerEmails": "release-managers@example.com",
    "notificationEmails": "service-team@example.com",
    "approverPrincipals": "arn:aws:iam::111111111111:role/ReleaseManagers",
    "stagingCanaryType": "Canary10Percent5Minutes",
    "stagingBakeMinutes": "5",
    "productionCanaryType": "Canary10Percent10Minutes",
    "productionBakeMinutes": "15",
    "reviewUrl": "https://github.com/example-org/serverless-release-pipeline/commit/{commitId}",
    "bootstrapQualifier": "hnb659fds",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The files make init reads and writes, from this checkout, holding the shipped values."""
    for name in EDITED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    flags = [f"{question.flag}={SHIPPED[question.key]}" for question in init.QUESTIONS]
    assert init.main(["--non-interactive", *flags], root=tmp_path) == 0
    return tmp_path


def fingerprint(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def answers(*replies: str) -> Callable[[str], str]:
    """A person at the prompt: each reply in turn; past the last one, Enter (keep the default)."""
    queue: Iterator[str] = iter(replies)

    def ask(prompt: str) -> str:
        reply = next(queue, "")
        if isinstance(reply, str) and reply in ("^C", "^D"):
            raise KeyboardInterrupt if reply == "^C" else EOFError
        return reply

    return ask


# ---------------------------------------------------------------- each value, with its reason


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("serviceName", "Orders", "lower-case letters, digits and '-'"),
        ("repository", "just-a-name", "'owner/name' of the source repository"),
        ("branch", "main branch", "the branch that releases"),
        ("connectionArn", "arn:aws:s3:::bucket", "the ARN of a CodeConnections connection"),
        ("pipelineAccount", "12345", "a 12-digit AWS account id"),
        ("stagingRegion", "europe", "an AWS region such as eu-west-1"),
        ("releaseManagerEmails", "ops@example.com, not-an-email", "contains 'not-an-email'"),
        ("approverPrincipals", "ReleaseManagers", "IAM role or user ARNs allowed to approve"),
        ("stagingCanaryType", "Canary50Percent5Minutes", "use one of AllAtOnce, Canary10Percent10Minutes"),
        ("productionBakeMinutes", "121", "a whole number from 1 to 120"),
        ("productionBakeMinutes", "ten", "a whole number from 1 to 120"),
        ("reviewUrl", "https://github.com/globex/ledger", "naming the commit with {commitId}"),
        ("bootstrapQualifier", "Globex-01", "the cdk bootstrap qualifier"),
    ],
)
def test_each_kind_of_value_is_refused_with_the_reason_config_gives(
    key: str, value: str, reason: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(reason)) as refused:
        parse_value(key, value)

    assert str(refused.value).startswith(key)


def test_accepted_values_come_back_in_their_cdk_json_types() -> None:
    assert parse_value("releaseManagerEmails", "a@x.test, b@x.test") == ("a@x.test", "b@x.test")
    assert parse_value("stagingBakeMinutes", "7") == 7
    assert parse_value("stagingCanaryType", "AllAtOnce") == "AllAtOnce"


def test_the_canary_types_offered_are_the_codedeploy_lambda_configurations_adr_0025_lists() -> None:
    adr = (ROOT / "docs/decisions/0025-make-init.md").read_text()
    listed = set(re.findall(r"`CodeDeployDefault\.Lambda(\w+)`", adr))

    assert listed == CANARY_TYPES


def test_a_staging_region_other_than_the_pipelines_is_refused_with_the_reason(root: Path) -> None:
    current = json.loads((root / "cdk.json").read_text())["context"]

    with pytest.raises(ConfigError, match="stagingRegion is us-east-1 but pipelineRegion is eu-west-1"):
        init.check_answer("stagingRegion", "us-east-1", current, {"pipelineRegion": "eu-west-1"})


def test_a_service_name_too_long_for_the_attachments_bucket_is_refused_with_the_longest_allowed() -> None:
    current = {"pipelineRegion": "ap-southeast-2"}

    with pytest.raises(ConfigError, match="S3 allows 63\\): use a service name of at most 12 characters"):
        init.check_answer("serviceName", "order-processing", current, {})
    assert init.check_answer("serviceName", "a" * 12, current, {}) == "a" * 12


def test_a_service_name_s3_reserves_as_a_bucket_prefix_is_refused() -> None:
    reason = "serviceName='xn--shop' starts the attachments bucket name with 'xn--', which S3 reserves"
    with pytest.raises(ConfigError, match=reason):
        init.check_answer("serviceName", "xn--shop", {"pipelineRegion": "eu-west-1"}, {})


# ---------------------------------------------------------------- what is written, and when


def test_flags_write_the_values_and_rename_only_what_carries_the_service_name(root: Path) -> None:
    before = {name: (root / name).read_text() for name in EDITED}

    assert init.main(TEAM_FLAGS, root=root) == 0

    context = json.loads((root / "cdk.json").read_text())["context"]
    assert (context["serviceName"], context["stagingAccount"], context["productionBakeMinutes"]) == (
        "ledger",
        "700000000001",
        30,
    )
    assert context["releaseManagerEmails"] == ["release@globex.test", "oncall@globex.test"]
    assert context["reviewUrl"] == "https://github.com/globex/ledger/commit/{commitId}"
    template = (root / "service/template.yaml").read_text()
    assert template.count("ledger-attachments-${AWS::AccountId}") == init.RENAMES[0].count
    assert "  ServiceName:\n    Type: String\n    Default: ledger\n" in template
    # The domain stays: the route, the key prefix, the package and the resources named after orders.
    assert (
        template.replace("ledger-attachments", "orders-attachments").replace(
            "Default: ledger\n", "Default: orders\n"
        )
        == before["service/template.yaml"]
    )
    assert (root / "README.md").read_text().splitlines()[0] == "# ledger"


def test_cdk_json_keeps_its_other_keys_and_its_one_line_per_key_layout(root: Path) -> None:
    before = (root / "cdk.json").read_text().splitlines()

    init.main(TEAM_FLAGS, root=root)

    after = (root / "cdk.json").read_text().splitlines()
    changed = [new for old, new in zip(before, after, strict=True) if old != new]
    assert len(before) == len(after)
    assert all(re.match(r'^    "[A-Za-z]+": ', line) for line in changed)
    assert '    "releaseManagerEmails": ["release@globex.test", "oncall@globex.test"],' in after


def test_a_cdk_json_laid_out_by_json_dumps_gets_only_its_values_changed(root: Path) -> None:
    document = json.loads((root / "cdk.json").read_text())
    (root / "cdk.json").write_text(json.dumps(document, indent=2))  # lists over several lines

    assert init.main(TEAM_FLAGS, root=root) == 0

    after = json.loads((root / "cdk.json").read_text())
    assert after["context"]["releaseManagerEmails"] == ["release@globex.test", "oncall@globex.test"]
    assert {key: after[key] for key in document if key != "context"} == {
        key: value for key, value in document.items() if key != "context"
    }


def test_running_it_twice_with_the_same_answers_gives_byte_identical_files(root: Path) -> None:
    init.main(TEAM_FLAGS, root=root)
    first = fingerprint(root)

    assert init.main(TEAM_FLAGS, root=root) == 0
    assert fingerprint(root) == first


def test_a_second_run_with_another_name_renames_the_first_ones(root: Path) -> None:
    init.main(TEAM_FLAGS, root=root)

    init.main([*TEAM_FLAGS, "--service-name=billing"], root=root)

    template = (root / "service/template.yaml").read_text()
    assert template.count("billing-attachments-") == init.RENAMES[0].count and "ledger" not in template


def test_a_refused_flag_exits_2_with_one_line_naming_the_flag_and_changes_nothing(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = fingerprint(root)

    code = init.main([*TEAM_FLAGS, "--staging-account=22222"], root=root)

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "make init: --staging-account: stagingAccount='22222' is not valid: "
        "set it to a 12-digit AWS account id"
    ]
    assert fingerprint(root) == before


def test_a_region_too_long_for_the_service_names_bucket_is_refused_naming_its_flag(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--non-interactive", "--service-name=order-processing", "--pipeline-region=ap-southeast-2"]

    assert init.main(flags, root=root) == 2

    assert capsys.readouterr().err.startswith("make init: --pipeline-region: pipelineRegion='ap-southeast-2'")


def test_a_template_that_no_longer_carries_the_name_where_expected_changes_no_file(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = root / "service/template.yaml"
    template.write_text(template.read_text().replace("  ServiceName:\n", "  Name:\n"))
    before = fingerprint(root)

    assert init.main(TEAM_FLAGS, root=root) == 2

    assert "service/template.yaml: expected the service name 1 time(s)" in capsys.readouterr().err
    assert fingerprint(root) == before


def test_an_unreadable_cdk_json_is_one_line_and_exit_2(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / "cdk.json").write_text("{ not json")

    assert init.main(TEAM_FLAGS, root=root) == 2

    assert len(capsys.readouterr().err.splitlines()) == 1


@pytest.mark.parametrize("stop", ["^C", "^D"])
def test_ctrl_c_or_end_of_input_at_a_prompt_leaves_every_file_as_it_was(root: Path, stop: str) -> None:
    before = fingerprint(root)

    code = init.main([], root=root, ask=answers("ledger", "globex/ledger", stop))

    assert code == 130
    assert fingerprint(root) == before


def test_a_refused_answer_is_asked_again_with_the_reason_and_the_default_shown(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts: list[str] = []
    replies = answers("Ledger", "ledger")

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return replies(prompt)

    assert init.main([], root=root, ask=ask) == 0

    assert prompts[:2] == [f"{init.QUESTIONS[0].prompt} [orders]: "] * 2
    assert "  refused: serviceName='Ledger' is not valid" in capsys.readouterr().out
    assert json.loads((root / "cdk.json").read_text())["context"]["serviceName"] == "ledger"


def test_enter_on_every_account_question_puts_everything_in_the_one_account_given(root: Path) -> None:
    init.main([], root=root, ask=answers("", "", "", "", "700000000009"))

    context = json.loads((root / "cdk.json").read_text())["context"]
    assert {context[f"{env}Account"] for env in ("pipeline", "staging", "production")} == {"700000000009"}
    assert context["approverPrincipals"] == ["arn:aws:iam::700000000009:role/ReleaseManagers"]


def test_with_non_interactive_nothing_is_asked(root: Path) -> None:
    def ask(prompt: str) -> str:
        raise AssertionError(f"asked {prompt!r}")

    assert init.main(["--non-interactive", "--service-name=ledger"], root=root, ask=ask) == 0


def _read_until(fd: int, marker: bytes, deadline: float) -> bytes:
    seen = b""
    while marker not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} in {seen[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
    return seen


def test_the_prompts_work_on_a_real_terminal(root: Path) -> None:
    controller, terminal = os.openpty()
    process = subprocess.Popen(  # fixed arguments
        [
            sys.executable,
            "-c",
            f"import sys; from pathlib import Path; from pipeline import init; "
            f"sys.exit(init.main([], root=Path({str(root)!r})))",
        ],
        cwd=ROOT,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    deadline = time.monotonic() + 60
    try:
        _read_until(controller, b"[orders]: ", deadline)
        os.write(controller, b"ledger\n")
        _read_until(controller, b"Source repository (owner/name) [", deadline)
        os.write(controller, b"\n" * len(init.QUESTIONS))
        output = _read_until(controller, b"make init: wrote", deadline)
        assert process.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    finally:
        process.kill()
        os.close(controller)
    assert b"cdk.json" in output
    assert json.loads((root / "cdk.json").read_text())["context"]["serviceName"] == "ledger"


# ---------------------------------------------------------------- a renamed copy of the repository
