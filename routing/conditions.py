"""Rule conditions: data, never code.

A condition is a TOML table. A leaf tests one signal with one operator::

    { signal = "sentiment.label", eq = "negative" }
    { signal = "churn_risk", ge = 0.6 }
    { signal = "reason.category", in = ["cancellation", "complaint"] }
    { signal = "emotion.current", contains = "anger" }
    { signal = "customer.tenure_months", present = true }

and groups combine them: ``{ all = [...] }``, ``{ any = [...] }``,
``{ not = {...} }``. ``parse_condition`` validates a raw table against the
signal vocabulary (``routing.facts``) and collects every problem with the
path of the offending field; ``evaluate`` tests a parsed condition;
``explain`` also reports every leaf and group with the observed value.

A missing value (``None``: no customer turn yet, no tenure in the metadata)
makes every operator false except ``present = false``; ``not`` then flips it,
as you would expect. Nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import msgspec

from routing.errors import did_you_mean
from routing.facts import SIGNALS, Value, signal_spec
from routing.taxonomy import INTENT_SUGGESTIONS

Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "present"]
OPS: tuple[Op, ...] = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "present")
_SYMBOL = {
    "eq": "=",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
    "present": "present =",
}
Scalar = str | int | float | bool
Operand = str | int | float | bool | list[str | int | float]


class Leaf(msgspec.Struct, frozen=True):
    """One test: ``signal <op> value``. ``path`` locates it in the policy file."""

    path: str
    signal: str
    op: Op
    value: Operand


class AllOf(msgspec.Struct, frozen=True):
    """Holds when every item holds."""

    path: str
    items: tuple[Condition, ...]


class AnyOf(msgspec.Struct, frozen=True):
    """Holds when at least one item holds."""

    path: str
    items: tuple[Condition, ...]


class Not(msgspec.Struct, frozen=True):
    """Holds when its item does not."""

    path: str
    item: Condition


Condition = Leaf | AllOf | AnyOf | Not


class ExplanationItem(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line of a decision's explanation.

    ``kind`` is ``rule`` (the rule that matched) or ``default`` (none did),
    ``condition`` (a leaf of the matched rule), ``group`` (an all/any/not of
    it), ``guardrail`` (a guardrail's state, or its override), ``priority`` (a
    priority boost), ``variant`` (experiment assignment), ``resolved`` (the
    customer closed the conversation calmly), ``reason`` (the level at which the
    contact reason is confident: intent, family or category) or ``stability``
    (how the previous decision shaped this one: kept, held, confirmed, changed).
    ``text`` is the line a supervisor reads; the other fields carry the same
    facts for machines.
    """

    kind: Literal[
        "rule",
        "default",
        "condition",
        "group",
        "guardrail",
        "priority",
        "variant",
        "resolved",
        "reason",
        "stability",
    ]
    text: str
    path: str | None = None
    signal: str | None = None
    op: str | None = None
    expected: Operand | None = None
    observed: Value = None
    held: bool | None = None


# --- parsing -----------------------------------------------------------------


# Operator spellings people reach for first.
_ALIASES = {
    "equals": "eq",
    "is": "eq",
    "not_equals": "ne",
    "gte": "ge",
    "lte": "le",
    "less_than": "lt",
    "greater_than": "gt",
    "one_of": "in",
    "none_of": "not_in",
    "has": "contains",
    "exists": "present",
}
# An intent name that is not one suggests the intent it means: a merged intent's old name, a
# common synonym (``INTENT_SUGGESTIONS``).
_VALUE_ALIASES = {**_ALIASES, **INTENT_SUGGESTIONS}


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def describe_kind(v: object) -> str:
    """How a policy error names a value's type: "a number", "a table", ..."""
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a table"
    return type(v).__name__


class _Errors:
    """Collects ``<where>, field '<path>': <problem>`` lines."""

    def __init__(
        self, where: str, out: list[str], domains: Mapping[str, tuple[str, ...]] | None = None
    ) -> None:
        self.where = where
        self.out = out
        # Label sets that replace a signal's own (custom contact reasons add intents and categories).
        self.domains: Mapping[str, tuple[str, ...]] = domains or {}

    def add(self, path: str, problem: str) -> None:
        prefix = f"{self.where}, " if self.where else ""
        self.out.append(f"{prefix}field '{path}': {problem}")


def parse_condition(
    raw: object,
    path: str,
    where: str,
    errors: list[str],
    domains: Mapping[str, tuple[str, ...]] | None = None,
) -> Condition | None:
    """Parse and validate a raw condition table.

    Problems are appended to ``errors`` as ``<where>, field '<path>': <problem>``
    (``where`` names the rule, e.g. ``rule 'vip'``); returns ``None`` if any.
    ``domains`` replaces the label set of some signals (``reason.intent`` with
    the custom contact reasons added, for example).
    """
    before = len(errors)
    cond = _parse(raw, path, _Errors(where, errors, domains))
    return cond if len(errors) == before else None


def _parse(raw: object, path: str, err: _Errors) -> Condition | None:
    if not isinstance(raw, dict):
        err.add(path, f"a condition must be a table, got {describe_kind(raw)}")
        return None
    groups = [k for k in ("all", "any", "not") if k in raw]
    if groups:
        if len(raw) != 1:
            others = ", ".join(sorted(k for k in raw if k != groups[0]))
            err.add(path, f"'{groups[0]}' must be alone in its table; found also {others}")
            return None
        return _parse_group(groups[0], raw[groups[0]], f"{path}.{groups[0]}", err)
    return _parse_leaf(raw, path, err)


def _parse_group(kind: str, raw: object, path: str, err: _Errors) -> Condition | None:
    if kind == "not":
        item = _parse(raw, path, err)
        return Not(path, item) if item is not None else None
    if not isinstance(raw, list) or not raw:
        err.add(path, f"'{kind}' needs a non-empty list of conditions, got {describe_kind(raw)}")
        return None
    items = [_parse(entry, f"{path}[{i}]", err) for i, entry in enumerate(raw)]
    parsed = tuple(item for item in items if item is not None)
    if len(parsed) != len(items):
        return None
    return AllOf(path, parsed) if kind == "all" else AnyOf(path, parsed)


def _parse_leaf(raw: dict[str, object], path: str, err: _Errors) -> Leaf | None:
    ok = True
    for key in raw:
        if key != "signal" and key not in OPS:
            hint = did_you_mean(key, ["signal", *OPS, "all", "any", "not"], _ALIASES)
            err.add(f"{path}.{key}", f"unknown field{hint}")
            ok = False
    ops = [k for k in raw if k in OPS]
    signal = raw.get("signal")
    if signal is None:
        err.add(f"{path}.signal", "missing: a condition names a signal, or is an all / any / not group")
        return None
    if not isinstance(signal, str):
        err.add(f"{path}.signal", f"must be a string, got {describe_kind(signal)}")
        return None
    spec = signal_spec(signal)
    if spec is None:
        err.add(f"{path}.signal", f"unknown signal {signal!r}{did_you_mean(signal, list(SIGNALS), _ALIASES)}")
        return None
    if not ops and not ok:
        return None  # the unknown field is most likely the operator, misspelt: one error is enough
    if len(ops) != 1:
        found = f"found {', '.join(ops)}" if ops else "found none"
        err.add(path, f"a condition needs exactly one operator ({', '.join(OPS)}); {found}")
        return None
    if not ok:
        return None
    op: Op = ops[0]
    value = raw[op]
    problem = _check_value(signal, spec.type, err.domains.get(signal, spec.domain), op, value)
    if problem:
        err.add(f"{path}.{op}", problem)
        return None
    return Leaf(path=path, signal=signal, op=op, value=value)  # type: ignore[arg-type]


def _check_value(
    signal: str, type_: str, domain: tuple[str, ...] | None, op: str, value: object
) -> str | None:
    free = domain is None and type_ == "string" and signal.startswith("customer.attributes.")
    if op == "present":
        return (
            None if isinstance(value, bool) else f"'present' takes true or false, got {describe_kind(value)}"
        )
    if op in ("lt", "le", "gt", "ge"):
        if type_ != "number" and not free:
            return f"'{op}' compares numbers, but {signal} is {type_}"
        return None if _is_number(value) else f"'{op}' needs a number, got {describe_kind(value)}"
    if op == "contains":
        if type_ != "labels" and not free:
            return f"'contains' tests a list signal, but {signal} is {type_}; use eq or in"
        if not isinstance(value, str):
            return f"'contains' needs a string, got {describe_kind(value)}"
        return _check_label(signal, domain, value)
    if type_ == "labels":
        return f"{signal} is a list of labels; test it with contains"
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            return f"'{op}' needs a non-empty list, got {describe_kind(value)}"
        for item in value:
            problem = _check_scalar(signal, type_, domain, item, free)
            if problem:
                return problem
        kinds = {describe_kind(item) for item in value}
        return None if len(kinds) == 1 else f"'{op}' list mixes {' and '.join(sorted(kinds))}"
    return _check_scalar(signal, type_, domain, value, free)


def _check_scalar(
    signal: str, type_: str, domain: tuple[str, ...] | None, value: object, free: bool
) -> str | None:
    if free:
        ok = isinstance(value, str | bool) or _is_number(value)
        return None if ok else f"needs a string, number or boolean, got {describe_kind(value)}"
    if type_ == "number":
        return None if _is_number(value) else f"{signal} is a number, got {describe_kind(value)}"
    if type_ == "bool":
        return None if isinstance(value, bool) else f"{signal} is true or false, got {describe_kind(value)}"
    if not isinstance(value, str):
        return f"{signal} is a string, got {describe_kind(value)}"
    return _check_label(signal, domain, value)


def _check_label(signal: str, domain: tuple[str, ...] | None, value: str) -> str | None:
    if domain is None or value in domain:
        return None
    return f"unknown value {value!r} for {signal}{did_you_mean(value, domain, _VALUE_ALIASES)}"


# --- evaluation --------------------------------------------------------------


def _equal(a: object, b: object) -> bool:
    # True == 1 in Python; in a policy a boolean only equals a boolean.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _compare(op: str, observed: object, expected: object) -> bool:
    if not (_is_number(observed) and _is_number(expected)):
        return False
    a, b = float(observed), float(expected)  # type: ignore[arg-type]
    return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def leaf_holds(leaf: Leaf, observed: Value) -> bool:
    """Return whether ``leaf`` holds for the ``observed`` value (see the module doc on missing values)."""
    op, expected = leaf.op, leaf.value
    if op == "present":
        return (observed is not None) == expected
    if observed is None:
        return False
    if op == "eq":
        return _equal(observed, expected)
    if op == "ne":
        return not _equal(observed, expected)
    if op in ("lt", "le", "gt", "ge"):
        return _compare(op, observed, expected)
    if op in ("in", "not_in"):
        found = isinstance(expected, list) and any(_equal(observed, item) for item in expected)
        return found if op == "in" else not found
    # contains
    if isinstance(observed, list):
        return expected in observed
    return isinstance(observed, str) and isinstance(expected, str) and expected in observed


def evaluate(cond: Condition, facts: dict[str, Value]) -> bool:
    """Return whether ``cond`` holds for ``facts`` (short-circuits; no explanation)."""
    if isinstance(cond, Leaf):
        return leaf_holds(cond, facts.get(cond.signal))
    if isinstance(cond, AllOf):
        return all(evaluate(item, facts) for item in cond.items)
    if isinstance(cond, AnyOf):
        return any(evaluate(item, facts) for item in cond.items)
    return not evaluate(cond.item, facts)


def explain(cond: Condition, facts: dict[str, Value]) -> tuple[bool, list[ExplanationItem]]:
    """Evaluate every part of ``cond`` (no short-circuit) and describe each.

    Returns whether it holds and one item per group and leaf, in file order,
    each with the observed value and whether it held.
    """
    items: list[ExplanationItem] = []
    held = _explain(cond, facts, items, depth=0)
    return held, items


def _explain(cond: Condition, facts: dict[str, Value], out: list[ExplanationItem], depth: int) -> bool:
    indent = "  " * depth
    if isinstance(cond, Leaf):
        observed = facts.get(cond.signal)
        held = leaf_holds(cond, observed)
        text = f"{indent}{_mark(held)} {describe_leaf(cond)} (observed {show(observed)})"
        out.append(
            ExplanationItem(
                kind="condition",
                text=text,
                path=cond.path,
                signal=cond.signal,
                op=cond.op,
                expected=cond.value,
                observed=observed,
                held=held,
            )
        )
        return held
    slot = len(out)
    out.append(ExplanationItem(kind="group", text="", path=cond.path))  # placeholder, filled below
    if isinstance(cond, Not):
        inner = _explain(cond.item, facts, out, depth + 1)
        held, label = not inner, "not"
    else:
        results = [_explain(item, facts, out, depth + 1) for item in cond.items]
        held = all(results) if isinstance(cond, AllOf) else any(results)
        word = "all" if isinstance(cond, AllOf) else "any"
        label = f"{word} of {len(results)} ({sum(results)} held)"
    out[slot] = ExplanationItem(
        kind="group", text=f"{indent}{_mark(held)} {label}", path=cond.path, op=label.split(" ")[0], held=held
    )
    return held


def _mark(held: bool) -> str:
    return "✓" if held else "✗"


def describe_leaf(leaf: Leaf) -> str:
    """Return ``leaf`` as a short human-readable test, e.g. ``churn_risk >= 0.6``."""
    return f"{leaf.signal} {_SYMBOL[leaf.op]} {show(leaf.value)}"


def show(value: object) -> str:
    """Format a value for an explanation line (floats to 3 places, None as 'missing')."""
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)
