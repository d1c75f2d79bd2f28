"""CloudWatch alarm evaluation over the recorded metrics, as CloudWatch does it (moto does not evaluate).

An alarm looks at its last `EvaluationPeriods` periods (a sliding window ending now), computes one
datapoint per period (a statistic, a percentile, or a metric-math expression), and goes to ALARM
when at least `DatapointsToAlarm` of them breach; `TreatMissingData` decides what an empty period
means. `time_scale` compresses time: at 3 real seconds per minute a 60 s period lasts 3 s, so a
canary watched for "5 minutes" takes 15 s.
"""

from __future__ import annotations

import ast
import operator
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rehearsal.alarms.metrics import MetricKey, MetricStore, dimensions
from rehearsal.base.clock import REAL_TIME, TimeScale

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
_OPERATORS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class UnsupportedAlarmError(ValueError):
    """An alarm feature the evaluator cannot emulate (anomaly detection, a math function it lacks)."""


@dataclass(frozen=True)
class MetricQuery:
    """One entry of an alarm's `Metrics` (or the single metric of a classic alarm)."""

    id: str
    period: float
    stat: str = "Sum"
    key: MetricKey | None = None
    expression: str | None = None
    return_data: bool = True


@dataclass(frozen=True)
class AlarmDefinition:
    """An `AWS::CloudWatch::Alarm`'s properties, resolved, in the evaluator's terms."""

    name: str
    queries: tuple[MetricQuery, ...]
    period: float
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing_data: str = "missing"

    @classmethod
    def from_properties(cls, name: str, properties: Mapping[str, Any]) -> AlarmDefinition:
        """Build from resolved template properties; `UnsupportedAlarmError` for what cannot be emulated."""
        comparison = properties.get("ComparisonOperator", "")
        if comparison not in _COMPARISONS:
            raise UnsupportedAlarmError(f"comparison {comparison!r} (anomaly detection) is not emulated")
        if "Metrics" in properties:
            queries = tuple(_query(item) for item in properties["Metrics"])
        else:
            stat = properties.get("ExtendedStatistic") or properties.get("Statistic", "Average")
            key = MetricKey(
                properties["Namespace"], properties["MetricName"], _dimensions(properties.get("Dimensions"))
            )
            queries = (MetricQuery(id="m", period=float(properties["Period"]), stat=stat, key=key),)
        returned = [query for query in queries if query.return_data]
        if len(returned) != 1:
            raise UnsupportedAlarmError("an alarm needs exactly one query with ReturnData true")
        evaluation_periods = int(properties["EvaluationPeriods"])
        return cls(
            name=properties.get("AlarmName", name),
            queries=queries,
            period=float(properties.get("Period") or returned[0].period or 60),
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=int(properties.get("DatapointsToAlarm", evaluation_periods)),
            threshold=float(properties["Threshold"]),
            comparison=comparison,
            treat_missing_data=properties.get("TreatMissingData", "missing"),
        )


def _dimensions(items: Iterable[Mapping[str, str]] | None) -> frozenset[tuple[str, str]]:
    return dimensions({item["Name"]: str(item["Value"]) for item in items or []})


def _query(item: Mapping[str, Any]) -> MetricQuery:
    return_data = bool(item.get("ReturnData", True))
    if "Expression" in item:
        _check_expression(item["Expression"])
        return MetricQuery(
            id=item["Id"],
            period=float(item.get("Period", 0)),
            expression=item["Expression"],
            return_data=return_data,
        )
    stat = item["MetricStat"]
    metric = stat["Metric"]
    key = MetricKey(metric["Namespace"], metric["MetricName"], _dimensions(metric.get("Dimensions")))
    return MetricQuery(
        id=item["Id"], period=float(stat["Period"]), stat=stat["Stat"], key=key, return_data=return_data
    )


def _check_expression(expression: str) -> None:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise UnsupportedAlarmError(f"metric math {expression!r} is not understood") from error
    for node in ast.walk(tree):
        allowed = (
            ast.Expression,
            ast.BinOp,
            ast.UnaryOp,
            ast.USub,
            ast.Name,
            ast.Load,
            ast.Constant,
            ast.Call,
        )
        if not isinstance(node, allowed + tuple(_OPERATORS)):
            raise UnsupportedAlarmError(f"metric math {expression!r} uses something not emulated")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id == "FILL"):
            raise UnsupportedAlarmError(f"metric math {expression!r}: only FILL() and + - * / are emulated")


def _evaluate_expression(  # noqa: PLR0911 - one return per kind of node reads best
    node: ast.AST, values: Mapping[str, float | None]
) -> float | None:
    if isinstance(node, ast.Expression):
        return _evaluate_expression(node.body, values)
    if isinstance(node, ast.Constant):
        return float(node.value) if isinstance(node.value, int | float) else None
    if isinstance(node, ast.Name):
        return values.get(node.id)
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate_expression(node.operand, values)
        return None if operand is None else -operand
    if isinstance(node, ast.Call):  # FILL(series, value): a missing datapoint becomes the value
        filled = _evaluate_expression(node.args[0], values)
        return _evaluate_expression(node.args[1], values) if filled is None else filled
    if not isinstance(node, ast.BinOp):  # _check_expression admits nothing else
        return None
    left = _evaluate_expression(node.left, values)
    right = _evaluate_expression(node.right, values)
    if left is None or right is None or (isinstance(node.op, ast.Div) and right == 0):
        return None
    return _OPERATORS[type(node.op)](left, right)


@dataclass(frozen=True, kw_only=True)
class AlarmEvidence:
    """Whether an alarm judged with data while it was watched: a canary or a bake says so per alarm.

    An alarm whose every evaluation found no datapoint in its window was decided by
    `TreatMissingData` alone (`notBreaching` passes any version): it judged *without data*.
    """

    alarm: str
    environment: str
    # "canary": a deployment group's alarm during a shift; "bake": a stage condition's alarm rule for its
    # wait time; "build": a bake alarm while a test build ran (its tests, then `make bake`).
    watched: str
    evaluations: int
    evaluations_with_data: int  # evaluations that found a datapoint in at least one evaluated period
    with_data: bool
    where: str = ""  # the pipeline action that watched it (Stage/Action), once the run records it

    def describe(self) -> str:
        if self.with_data:
            return (
                f"alarm {self.alarm}: judged with data (datapoints in {self.evaluations_with_data} "
                f"of {self.evaluations} evaluations)"
            )
        return (
            f"alarm {self.alarm}: judged WITHOUT data (no datapoint in any of {self.evaluations} "
            "evaluations: its TreatMissingData decided)"
        )


@dataclass(frozen=True)
class AlarmStateChange:
    alarm: str
    old_state: str
    new_state: str
    reason: str
    timestamp: float


@dataclass
class AlarmEvaluator:
    """Evaluates alarms against a metric store and remembers their states; reports every change."""

    alarms: list[AlarmDefinition]
    store: MetricStore
    time_scale: TimeScale = REAL_TIME
    clock: Callable[[], float] = time.time
    states: dict[str, str] = field(default_factory=dict)
    # Per alarm: evaluations so far, and those whose window held a datapoint (see `evidence`).
    evaluations: dict[str, int] = field(default_factory=dict)
    evaluations_with_data: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for alarm in self.alarms:
            self.states.setdefault(alarm.name, INSUFFICIENT_DATA)

    def datapoints(self, alarm: AlarmDefinition, now: float) -> list[float | None]:
        """The alarm's datapoints for its evaluation window, oldest first (None: no data)."""
        period = self.time_scale.real_seconds(alarm.period)
        points: list[float | None] = []
        for index in range(alarm.evaluation_periods, 0, -1):
            start = now - index * period
            values: dict[str, float | None] = {}
            for query in alarm.queries:  # metrics first: expressions may name any of them
                if query.key is not None:
                    values[query.id] = self.store.statistic(query.key, query.stat, start, start + period)
            for query in alarm.queries:
                if query.expression is not None:
                    values[query.id] = _evaluate_expression(ast.parse(query.expression, mode="eval"), values)
            returned = next(query for query in alarm.queries if query.return_data)
            points.append(values[returned.id])
        return points

    def evaluate(self, now: float | None = None) -> list[AlarmStateChange]:
        """Evaluate every alarm once; return the state changes (also kept in `states`)."""
        when = self.clock() if now is None else now
        changes = []
        for alarm in self.alarms:
            points = self.datapoints(alarm, when)
            self.evaluations[alarm.name] = self.evaluations.get(alarm.name, 0) + 1
            if any(point is not None for point in points):
                self.evaluations_with_data[alarm.name] = self.evaluations_with_data.get(alarm.name, 0) + 1
            old = self.states[alarm.name]
            new, reason = _decide(alarm, points, old)
            if new != old:
                self.states[alarm.name] = new
                changes.append(AlarmStateChange(alarm.name, old, new, reason, when))
        return changes

    def in_alarm(self) -> list[str]:
        return sorted(name for name, state in self.states.items() if state == ALARM)

    def evidence(self, names: Iterable[str], *, environment: str, watched: str) -> tuple[AlarmEvidence, ...]:
        """What each of `names` judged with since this evaluator started (unknown names: no evaluation)."""
        return tuple(
            AlarmEvidence(
                alarm=name,
                environment=environment,
                watched=watched,
                evaluations=self.evaluations.get(name, 0),
                evaluations_with_data=self.evaluations_with_data.get(name, 0),
                with_data=self.evaluations_with_data.get(name, 0) > 0,
            )
            for name in names
        )


def _decide(alarm: AlarmDefinition, points: list[float | None], current: str) -> tuple[str, str]:
    compare = _COMPARISONS[alarm.comparison]
    present = [point for point in points if point is not None]
    missing = len(points) - len(present)
    breaching = sum(1 for point in present if compare(point, alarm.threshold))
    if alarm.treat_missing_data == "breaching":
        breaching += missing
    elif not present and alarm.treat_missing_data in ("missing", "ignore"):
        if alarm.treat_missing_data == "ignore":
            return current, "no datapoints: state kept (TreatMissingData ignore)"
        return INSUFFICIENT_DATA, "no datapoints in the evaluation window"
    rendered = ", ".join("-" if point is None else f"{point:g}" for point in points)
    reason = (
        f"{breaching} of the last {len(points)} datapoints [{rendered}] breach "
        f"{alarm.comparison} {alarm.threshold:g} (needs {alarm.datapoints_to_alarm})"
    )
    return (ALARM if breaching >= alarm.datapoints_to_alarm else OK), reason


# ---------------------------------------------------------------- composite alarms

_RULE_TOKEN = re.compile(
    r"\s*(?:(?P<function>ALARM|OK|INSUFFICIENT_DATA)\s*\(\s*(?:\"(?P<quoted>[^\"]*)\"|(?P<bare>[^)\s]+))\s*\)"
    r"|(?P<word>AND|OR|NOT|TRUE|FALSE)\b|(?P<paren>[()]))"
)
_STATE_FUNCTIONS = {"ALARM": ALARM, "OK": OK, "INSUFFICIENT_DATA": INSUFFICIENT_DATA}
RuleNode = tuple[Any, ...]


@dataclass(frozen=True)
class CompositeAlarmDefinition:
    """An `AWS::CloudWatch::CompositeAlarm`: an `AlarmRule` over other alarms' states.

    The rule language is CloudWatch's: `ALARM("name")`, `OK(name)`, `INSUFFICIENT_DATA(name)`,
    `TRUE`, `FALSE`, `NOT`, `AND`, `OR` and parentheses (NOT binds tighter than AND, AND than OR).
    """

    name: str
    rule: str
    tree: RuleNode = field(compare=False, repr=False)

    @classmethod
    def from_properties(cls, name: str, properties: Mapping[str, Any]) -> CompositeAlarmDefinition:
        rule = str(properties.get("AlarmRule", ""))
        return cls(name=str(properties.get("AlarmName") or name), rule=rule, tree=parse_alarm_rule(rule))

    def members(self) -> list[str]:
        """The alarms the rule names, in order of appearance."""
        found: list[str] = []

        def walk(node: RuleNode) -> None:
            if node[0] == "state":
                if node[2] not in found:
                    found.append(node[2])
            elif node[0] in ("and", "or", "not"):
                for child in node[1:]:
                    walk(child)

        walk(self.tree)
        return found

    def state(self, states: Mapping[str, str]) -> str:
        """ALARM when the rule holds over `states` (an unknown alarm counts as INSUFFICIENT_DATA), else OK."""
        return ALARM if _rule_holds(self.tree, states) else OK


def parse_alarm_rule(rule: str) -> RuleNode:
    """The rule as a tree; `UnsupportedAlarmError` naming what is not understood."""
    tokens: list[tuple[str, str]] = []
    position = 0
    text = rule.rstrip()
    while position < len(text):
        match = _RULE_TOKEN.match(text, position)
        if match is None:
            raise UnsupportedAlarmError(f"alarm rule {rule!r}: cannot read {text[position:][:30]!r}")
        if match.group("function"):
            name = match.group("quoted") if match.group("quoted") is not None else match.group("bare")
            tokens.append((match.group("function"), name))
        else:
            tokens.append((match.group("word") or match.group("paren"), ""))
        position = match.end()
    parser = _RuleParser(tokens, rule)
    tree = parser.expression()
    if parser.index != len(tokens):
        raise UnsupportedAlarmError(f"alarm rule {rule!r}: unexpected {tokens[parser.index][0]}")
    return tree


class _RuleParser:
    def __init__(self, tokens: list[tuple[str, str]], rule: str) -> None:
        self.tokens = tokens
        self.rule = rule
        self.index = 0

    def _peek(self) -> str | None:
        return self.tokens[self.index][0] if self.index < len(self.tokens) else None

    def expression(self) -> RuleNode:
        node = self.conjunction()
        while self._peek() == "OR":
            self.index += 1
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> RuleNode:
        node = self.negation()
        while self._peek() == "AND":
            self.index += 1
            node = ("and", node, self.negation())
        return node

    def negation(self) -> RuleNode:
        if self._peek() == "NOT":
            self.index += 1
            return ("not", self.negation())
        return self.atom()

    def atom(self) -> RuleNode:
        kind = self._peek()
        if kind is None:
            raise UnsupportedAlarmError(f"alarm rule {self.rule!r} ends too early")
        name = self.tokens[self.index][1]
        self.index += 1
        if kind in _STATE_FUNCTIONS:
            return ("state", _STATE_FUNCTIONS[kind], name)
        if kind in ("TRUE", "FALSE"):
            return ("constant", kind == "TRUE")
        if kind == "(":
            node = self.expression()
            if self._peek() != ")":
                raise UnsupportedAlarmError(f"alarm rule {self.rule!r}: a parenthesis is not closed")
            self.index += 1
            return node
        raise UnsupportedAlarmError(f"alarm rule {self.rule!r}: unexpected {kind}")


def _rule_holds(node: RuleNode, states: Mapping[str, str]) -> bool:
    kind = node[0]
    if kind == "state":
        return bool(states.get(node[2], INSUFFICIENT_DATA) == node[1])
    if kind == "constant":
        return bool(node[1])
    if kind == "not":
        return not _rule_holds(node[1], states)
    if kind == "and":
        return _rule_holds(node[1], states) and _rule_holds(node[2], states)
    return _rule_holds(node[1], states) or _rule_holds(node[2], states)
