"""docs/operations.md lists every alarm service/template.yaml defines, and nothing else.

The alarm table is parsed from the markdown (first cell: the logical id in backticks); the alarms are
every AWS::CloudWatch::Alarm and AWS::CloudWatch::CompositeAlarm of the SAM template, read with
cfn-lint's YAML decoder (it understands !Ref and !Sub).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "service" / "template.yaml"
OPERATIONS = REPO / "docs" / "operations.md"
ALARM_TYPES = {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"}
_ROW = re.compile(r"^\|\s*`(?P<id>[A-Za-z0-9]+)`\s*\|(?P<rest>.*)\|\s*$")


def template_alarms(path: Path = TEMPLATE) -> set[str]:
    template, matches = decode(str(path))
    assert template is not None, matches
    resources: dict[str, Any] = template["Resources"]
    return {logical_id for logical_id, body in resources.items() if body.get("Type") in ALARM_TYPES}


def documented_alarms(markdown: str) -> dict[str, list[str]]:
    """Rows of the table under '## Alarms': logical id -> the other cells."""
    section = markdown.split("\n## Alarms\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        found = _ROW.match(line.strip())
        if found:
            rows[found["id"]] = [cell.strip() for cell in found["rest"].split("|")]
    return rows


def test_the_operations_table_lists_exactly_the_alarms_of_the_service_template() -> None:
    in_template = template_alarms()
    in_doc = set(documented_alarms(OPERATIONS.read_text(encoding="utf-8")))

    assert in_template - in_doc == set(), "alarms the template defines but docs/operations.md does not list"
    assert in_doc - in_template == set(), "alarms docs/operations.md lists but the template no longer defines"


def test_every_documented_alarm_says_its_kind_what_it_means_and_what_to_do_first() -> None:
    rows = documented_alarms(OPERATIONS.read_text(encoding="utf-8"))

    incomplete = {alarm for alarm, cells in rows.items() if len(cells) != 3 or not all(cells)}
    assert incomplete == set()
    assert {cells[0].split()[0] for cells in rows.values()} == {"deployment", "operations"}


def test_an_alarm_missing_from_the_table_is_noticed() -> None:
    markdown = OPERATIONS.read_text(encoding="utf-8")
    without_one = "\n".join(line for line in markdown.splitlines() if "`ApiLatencyAlarm`" not in line)

    assert template_alarms() - set(documented_alarms(without_one)) == {"ApiLatencyAlarm"}
