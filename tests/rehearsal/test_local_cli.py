"""`rehearsal local` (make local): summary, outputs file, clean stop, and one-line user errors."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from pathlib import Path

import pytest
import requests

from rehearsal.base.aws import ACCOUNT_ID, REGION
from rehearsal.cli.local import run_local
from rehearsal.cli.main import build_parser, main
from rehearsal.cloud.server import port_is_free
from tests.rehearsal.polling import wait_for

TEMPLATE = Path(__file__).parent / "fixtures" / "app" / "template.yaml"


def _children() -> set[int]:
    own = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == own:
                found.add(int(entry.name))
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_make_local_prints_how_to_reach_it_and_stops_every_process_and_port(tmp_path: Path) -> None:
    port = _free_port()
    outputs_file = tmp_path / "outputs.json"
    args = build_parser().parse_args(
        ["local", "--template", str(TEMPLATE), "--port", str(port), "--outputs-file", str(outputs_file)]
    )
    before = _children()
    stop = threading.Event()
    out = io.StringIO()
    args.quiet = False
    runner = threading.Thread(target=lambda: run_local(args, stop=stop, out=out))
    runner.start()
    wait_for(outputs_file.exists, timeout=30, what="make local writing its outputs file")
    document = json.loads(outputs_file.read_text())
    cloud_port = int(document["endpointUrl"].rsplit(":", 1)[1])
    during = _children() - before
    assert requests.get(f"{document['baseUrl']}/open", timeout=10).status_code == 200
    stop.set()
    runner.join(30)

    summary = out.getvalue()
    assert f"http://127.0.0.1:{port}" in summary
    assert "access key 'test', secret 'test'" in summary
    assert "AWS::DynamoDB::Table" in summary and "AWS::IAM::Role" in summary
    assert document["baseUrl"] == f"http://127.0.0.1:{port}"
    assert document["outputs"]["ApiUrl"] == document["baseUrl"]
    # No pipeline deploys `make local`: it runs in the one home of the defaults.
    assert (document["accountId"], document["region"]) == (ACCOUNT_ID, REGION)
    assert f"account '{ACCOUNT_ID}'" in summary
    assert during, "the local cloud runs in a child process"
    assert not (_children() & during), "every child process is gone"
    assert port_is_free(port) and port_is_free(cloud_port)
    assert '"type": "invocation"' in summary, "invocation logs are streamed as JSON lines"


def test_a_port_in_use_ends_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["local", "--template", str(TEMPLATE), "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert error == f"error: port {port} is in use: stop what uses it or choose another with PORT=\n"


def test_a_missing_template_ends_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["local", "--template", str(tmp_path / "none.yaml")]) == 2
    assert "no template at" in capsys.readouterr().err


def test_an_unreadable_template_ends_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text("Resources: [unclosed")
    assert main(["local", "--template", str(broken), "--port", "0"]) == 2
    assert "is not valid YAML" in capsys.readouterr().err
