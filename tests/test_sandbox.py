"""Rule files cannot run code: known jinja2 sandbox escapes and dunder access fail with a diagnostic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import engine
from engine import EvaluationError
from tests.conftest import context_for, sample_record

ESCAPES = [
    "{{ product.__class__ }}",
    "{{ product.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ product.__init__.__globals__ }}",
    "{{ sku.specs.__class__ }}",
    "{{ lookup.__globals__['os'] }}",
    "{{ self._TemplateReference__context }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ request.application.__globals__ }}",
    "{{ config.items() }}",
    "{{ product.model_dump() }}",
    "{{ product.model_copy }}",
    "{{ sku.specs.items() }}",
    "{{ ''['__class__'] }}",
    "{{ product['__class__'] }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ (product|attr('__class__')) }}",
    "{{ 'a'.upper() }}",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_sandbox_escape_fails_at_compile_time_or_at_run_time(
    rule_file: Callable[..., Path], template: str
) -> None:
    path = rule_file(f"listing:\n  title: {template!r}\n".replace("\\'", "''"))
    result = engine.check_rules(path)
    if result.compiled is None:
        assert result.errors, "a rejected template must come with a diagnostic"
        assert all(d.span.line == 11 for d in result.errors)
        return
    # Compiled (e.g. a call the static pass cannot see through): running it must not escape.
    ctx = context_for(sample_record())
    with pytest.raises(EvaluationError):
        result.compiled.listing["title"].evaluate(ctx)


def test_dunder_access_is_a_diagnostic(rule_file: Callable[..., Path]) -> None:
    result = engine.check_rules(rule_file("listing:\n  title: '{{ product.__class__ }}'\n"))
    assert [(d.code, d.span.line, d.span.column) for d in result.errors] == [("TP404", 11, 22)]


def test_dunder_field_in_an_expression_is_a_diagnostic(rule_file: Callable[..., Path]) -> None:
    result = engine.check_rules(rule_file("listing:\n  title: =product.__class__\n"))
    assert [(d.code, d.span.line, d.span.column) for d in result.errors] == [("TP311", 11, 19)]


def test_expressions_cannot_reach_python_builtins(rule_file: Callable[..., Path]) -> None:
    for text in ("=__import__('os')", "=eval('1')", "=open('/etc/passwd')", "=ctx"):
        result = engine.check_rules(rule_file(f'listing:\n  title: "{text}"\n'))
        assert result.errors, text
        assert result.errors[0].code in ("TP301", "TP303", "TP201"), (text, result.errors[0])


def test_templates_render_the_catalog(rule_file: Callable[..., Path]) -> None:
    result = engine.check_rules(
        rule_file(
            "listing:\n  title: \"{{ product.brand }} {{ sku.specs.Cor | lookup('colors') | upper }}\"\n"
        )
    )
    assert result.compiled is not None
    assert result.compiled.listing["title"].evaluate(context_for(sample_record())) == "Acme BLUE"
