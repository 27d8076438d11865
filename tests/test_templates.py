"""Templates that only print values run as compiled expressions; they must print what jinja2 prints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import engine
from engine.rules._templates import CompiledTemplate
from tests.conftest import context_for, sample_record

TEMPLATES = [
    "{{ product.brand }} {{ product.name }}",
    "{{ product.name }}{{ ' ' ~ sku.specs.Cor if sku.specs.Cor }}"
    "{{ ' ' ~ sku.specs.Material if sku.specs.Material }}",
    "{{ sku.specs.Cor | lookup('colors') | upper }} / {{ lookup('colors', 'Preto') }}",
    "{{ price.selling }} {{ price.selling * 2 }} {{ price.base }}",
    "{{ 'premium' if price.selling > 90 and sku.active else 'standard' }}",
    "{{ len(product.name) }} chars, {{ truncate(product.description, 10) }}",
    "{{ sku.specs['Tamanho'] }}-{{ not sku.active }}-{{ sku.specs.Cor == 'Azul' }}",
]


@pytest.mark.parametrize("text", TEMPLATES)
def test_translated_template_prints_what_jinja_prints(rule_file: Callable[..., Path], text: str) -> None:
    escaped = text.replace('"', '\\"')
    compiled = engine.compile_rules(rule_file(f'listing:\n  title: "{escaped}"\n'))
    template = compiled.listing["title"].compiled
    assert isinstance(template, CompiledTemplate)
    assert template.fast is not None, "this template should have been translated"
    ctx = context_for(sample_record())
    jinja = template.render_fn({name: getattr(ctx, name) for name in template.names})
    assert template.fast(ctx) == jinja


def test_templates_with_jinja_features_keep_the_sandboxed_renderer(rule_file: Callable[..., Path]) -> None:
    text = "{% for image in sku.images %}{{ image.url }} {% endfor %}{{ [product.brand, 'x'] | join(',') }}"
    compiled = engine.compile_rules(rule_file(f'listing:\n  title: "{text}"\n'))
    template = compiled.listing["title"].compiled
    assert isinstance(template, CompiledTemplate) and template.fast is None
    assert template(context_for(sample_record())) == "https://img.example/10.jpg Acme,x"


def test_a_lookup_miss_in_a_translated_template_is_an_evaluation_error(
    rule_file: Callable[..., Path],
) -> None:
    compiled = engine.compile_rules(
        rule_file("listing:\n  title: \"{{ sku.specs.Cor | lookup('colors') }}\"\n")
    )
    template = compiled.listing["title"].compiled
    assert isinstance(template, CompiledTemplate) and template.fast is not None
    with pytest.raises(engine.EvaluationError, match="'Verde'") as caught:
        template(context_for(sample_record(sku={"specs": {"Cor": "Verde"}})))
    assert caught.value.span is not None and caught.value.span.line == 11
