"""Rule tests: `rules/<marketplace>.test.yaml` cases run against the compiled rule file.

A case gives a product, SKU, price and stock (merged over the file's
``defaults`` so cases stay short) and expects fields of the resulting
listing, or the reason it is rejected. A failure reports expected against
actual and the rule (file:line) that produced the actual value, which is
what a rule author needs to fix either the rule or the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine._diagnostics import DiagnosticSink, RuleError, Span, did_you_mean
from engine.connectors._registry import available_connectors, connector_class
from engine.model._catalog import CatalogRecord, MalformedRecord
from engine.model._listing import STANDARD_FIELDS, Outcome
from engine.rules._check import CheckResult, compile_rules
from engine.rules._yaml import Node, read_yaml
from engine.sync._evaluate import SkuEvaluator

_LISTING_KEYS = ("status", "category", "price", "sale_price", "quantity", "group")


@dataclass
class Mismatch:
    key: str
    expected: Any
    actual: Any
    rule: str | None = None


@dataclass
class CaseResult:
    name: str
    span: Span
    passed: bool
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str | None = None
    outcome: Outcome | None = None


@dataclass
class TestFileResult:
    file: str
    rules: str
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed]


def rules_for(test_file: Path, node: Node | None) -> Path:
    """The rule file a test file tests: its ``rules:`` key, or the file beside it with the same stem."""
    if node is not None and isinstance(node.value, str):
        return (test_file.parent / node.value).resolve()
    return test_file.with_name(test_file.name.replace(".test.yaml", ".yaml"))


def run_test_file(path: Path) -> TestFileResult:
    """Run every case of a rule-test file; raises RuleError when the file or its rules are broken."""
    sink = DiagnosticSink()
    root = read_yaml(path, sink)
    sink.raise_if_errors()
    assert root is not None
    rules_path = rules_for(path, root.get("rules"))
    compiled = compile_rules(rules_path, available_connectors())
    evaluator = SkuEvaluator(compiled, connector_class(compiled.marketplace)(compiled.rules.options))
    defaults = root.get("defaults")
    base = defaults.plain() if defaults is not None and defaults.is_mapping else {}
    result = TestFileResult(str(path), str(rules_path))
    cases = root.get("cases")
    if cases is None or not cases.is_sequence:
        sink.error("TP150", "a rule-test file needs a 'cases:' list", root.span)
        sink.raise_if_errors()
    assert cases is not None
    for index, case in enumerate(cases.value):
        result.cases.append(_run_case(case, index, base, evaluator))
    return result


def _run_case(case: Node, index: int, base: dict[str, Any], evaluator: SkuEvaluator) -> CaseResult:
    name_node = case.get("name")
    name = name_node.text if name_node is not None else f"case {index + 1}"
    given = case.get("given")
    expect = case.get("expect")
    if given is None or expect is None or not expect.is_mapping:
        return CaseResult(name, case.span, False, error="a case needs 'given:' and an 'expect:' mapping")
    if not given.is_mapping:
        return CaseResult(
            name, case.span, False, error="'given' must be a mapping of product, sku, price, stock"
        )
    data = _merge(base, given.plain())
    try:
        record = CatalogRecord.parse(_jsonable(data))
    except MalformedRecord as exc:
        return CaseResult(name, case.span, False, error=f"'given' is not a valid catalog record: {exc}")
    known = {*_LISTING_KEYS, "reason", "reasons", *evaluator.compiled.listing, *STANDARD_FIELDS}
    unknown = [key for key, _ in expect.items() if key.removeprefix("listing.").split(".")[0] not in known]
    if unknown:
        return CaseResult(
            name,
            case.span,
            False,
            error=f"unknown expect key(s): {', '.join(unknown)}; "
            f"use status, category, price, sale_price, quantity, group, reason or a listing field",
        )
    outcome = evaluator.evaluate(record, explain=True)
    mismatches = [m for key, node in expect.items() if (m := _compare(key, node, outcome)) is not None]
    return CaseResult(name, case.span, not mismatches, mismatches, outcome=outcome)


def _compare(key: str, node: Node, outcome: Outcome) -> Mismatch | None:
    expected = node.plain()
    listing = outcome.listing
    spans = outcome.provenance
    if key in ("reason", "reasons"):
        wanted = [n.text for n in node.value] if node.is_sequence else [node.text]
        messages = [str(r) for r in outcome.reasons]
        missing = [w for w in wanted if not any(w in m for m in messages)]
        if missing:
            return Mismatch(key, wanted, messages or f"no reason ({outcome.status})")
        return None
    if key == "status":
        return (
            None
            if outcome.status == expected
            else Mismatch(key, expected, outcome.status, "; ".join(str(r) for r in outcome.reasons) or None)
        )
    if listing is None:
        return Mismatch(
            key,
            expected,
            f"no listing ({outcome.status}: " + "; ".join(str(r) for r in outcome.reasons) + ")",
        )
    if key in _LISTING_KEYS:
        actual: Any = getattr(listing, key)
        rule_span = spans.get(key)
    else:
        path = key.removeprefix("listing.").split(".")
        actual = listing.fields
        for part in path:
            if isinstance(actual, list) and part.isdigit():
                actual = actual[int(part)] if int(part) < len(actual) else None
            else:
                actual = actual.get(part) if isinstance(actual, dict) else None
        rule_span = spans.get(f"listing.{path[0]}")
    if _equal(expected, actual):
        return None
    return Mismatch(key, expected, actual, f"{rule_span.file}:{rule_span.line}" if rule_span else None)


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            _equal(e, a) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, Decimal) and isinstance(actual, Decimal | int):
        return Decimal(actual) == expected
    if isinstance(expected, Decimal) and isinstance(actual, str):
        return actual == str(expected)
    return bool(expected == actual)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


__all__ = ["CaseResult", "Mismatch", "RuleError", "TestFileResult", "rules_for", "run_test_file"]


_TEST_FILE_KEYS = ("rules", "defaults", "cases")


def check_test_file(path: Path) -> CheckResult:
    """A rule-test file's own mistakes, without running it (`tradepost check rules/*.yaml`).

    Its YAML, its keys, the rule file it tests and the shape of each case; running the cases
    (and so compiling the rule file) is `tradepost test`'s job.
    """
    sink = DiagnosticSink()
    try:
        root = read_yaml(path, sink)
    except OSError as exc:
        sink.error("TP132", f"cannot read '{path}': {exc}", Span(str(path), 1, 1))
        root = None
    if root is not None and not root.is_mapping:
        sink.error("TP150", "a rule-test file must be a mapping with a 'cases:' list", root.span)
    elif root is not None:
        _check_test_keys(path, root, sink)
    return CheckResult(str(path), sink.sorted())


def _check_test_keys(path: Path, root: Node, sink: DiagnosticSink) -> None:
    for key, node in root.items():
        if key not in _TEST_FILE_KEYS:
            guess = did_you_mean(key, _TEST_FILE_KEYS)
            hint = f"did you mean '{guess}'?" if guess else f"allowed keys: {', '.join(_TEST_FILE_KEYS)}"
            sink.error("TP111", f"unknown key '{key}' in a rule-test file", node.key_span or node.span, hint)
    target = root.get("rules")
    if not rules_for(path, target).is_file():
        where = (target.span if target is not None else None) or Span(str(path), 1, 1)
        sink.error(
            "TP130",
            f"the rule file this test file tests, '{rules_for(path, target).name}', does not exist",
            where,
            hint="name it with 'rules:' (relative to this file), or put the test beside it as NAME.test.yaml",
        )
    cases = root.get("cases")
    if cases is None or not cases.is_sequence or not cases.value:
        sink.error("TP150", "a rule-test file needs a 'cases:' list", (cases or root).key_span or root.span)
        return
    for case in cases.value:
        given, expect = case.get("given"), case.get("expect")
        if given is None or expect is None or not given.is_mapping or not expect.is_mapping:
            sink.error(
                "TP151",
                "a case needs a 'given:' mapping (product, sku, price, stock) and an 'expect:' mapping",
                case.span,
                hint="cases: [{name: …, given: {sku: {…}}, expect: {status: valid}}]",
            )
