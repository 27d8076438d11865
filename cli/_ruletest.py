"""`tradepost test`: run the rule tests beside each rule file."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cli._render import console, render_diagnostics
from engine import RuleError, TestFileResult, run_test_file
from engine.jsonio import dumps


def _default_test_files() -> list[Path]:
    folder = Path("rules")
    return sorted(folder.glob("*.test.yaml")) if folder.is_dir() else []


@click.command("test")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def ruletest(files: Sequence[Path], fmt: str) -> None:
    """Run rule tests (rules/*.test.yaml): given a product, SKU, price and stock, expect fields."""
    paths = list(files) or _default_test_files()
    if not paths:
        raise click.UsageError("no rule-test files given and none found as rules/*.test.yaml")
    results: list[TestFileResult] = []
    broken = 0
    for path in paths:
        try:
            results.append(run_test_file(path))
        except RuleError as exc:
            broken += 1
            render_diagnostics(exc.diagnostics)
        except OSError as exc:
            broken += 1
            click.echo(f"{path}: cannot read: {exc}", err=True)
    failed = sum(len(r.failed) for r in results)
    total = sum(len(r.cases) for r in results)
    if fmt == "json":
        click.echo(
            dumps(
                {
                    "files": [_file_json(r) for r in results],
                    "passed": total - failed,
                    "failed": failed,
                    "broken_files": broken,
                },
                indent=2,
            )
        )
    else:
        _print(results)
        click.echo(
            f"{total - failed} passed, {failed} failed" + (f", {broken} file(s) broken" if broken else "")
        )
    sys.exit(1 if failed or broken else 0)


def _print(results: list[TestFileResult]) -> None:
    out = console()
    for result in results:
        out.print(f"[bold]{result.file}[/bold] (rules: {result.rules})")
        for case in result.cases:
            mark = "[green]✓[/green]" if case.passed else "[red]✗[/red]"
            out.print(f"  {mark} {case.name}", highlight=False)
            if case.error:
                out.print(f"      {case.span}: {case.error}", highlight=False)
            for m in case.mismatches:
                out.print(f"      {m.key}: expected {dumps(m.expected)}", highlight=False)
                out.print(f"      {' ' * len(m.key)}    actual {dumps(m.actual)}", highlight=False)
                if m.rule:
                    out.print(f"      {' ' * len(m.key)}    from   {m.rule}", highlight=False)
            if not case.passed:
                out.print(f"      (case at {case.span})", highlight=False)


def _file_json(result: TestFileResult) -> dict[str, Any]:
    return {
        "file": result.file,
        "rules": result.rules,
        "cases": [
            {
                "name": c.name,
                "passed": c.passed,
                "location": str(c.span),
                "error": c.error,
                "mismatches": [
                    {"key": m.key, "expected": m.expected, "actual": m.actual, "rule": m.rule}
                    for m in c.mismatches
                ],
            }
            for c in result.cases
        ],
    }
