"""The ``tradepost`` command. The only place in the project that prints.

Every command is scheduler-friendly: no prompts, ``--format json`` for
machines, meaningful exit codes, and no traceback ever reaches a user (set
``TRADEPOST_DEBUG=1`` to see one when reporting a bug).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cli._output import check_writable
from cli._render import render_coverage, render_diagnostics, tolerant_output
from engine import RuleError, TradepostError, check_all, rule_file_schema
from engine.catalog import catalog_coverage
from engine.project import catalog_records, load_project
from engine.secrets import RedactingFilter, redact

EXIT_OK = 0
EXIT_ERROR = 1


def _relative(path: Path) -> Path:
    """Paths as the user would type them from here, in messages."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _default_rule_files() -> list[Path]:
    """Every rule file under ./rules, leaving out rule tests and shared tables."""
    folder = Path("rules")
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.yaml") if not p.name.endswith(".test.yaml"))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tradepost")
def cli() -> None:
    """Sync a VTEX seller catalog to marketplaces from declarative rule files."""


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one document with every diagnostic, for editors and CI.",
)
@click.option(
    "--catalog",
    "with_catalog",
    is_flag=True,
    help="Also report catalog coverage: unmapped categories, values missing from lookup tables.",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Project config, for --catalog (default: ./tradepost.yaml or $TRADEPOST_CONFIG).",
)
def check(files: Sequence[Path], fmt: str, with_catalog: bool, config_path: Path | None) -> None:
    """Check rule files and report every problem with its file:line:col.

    With no FILES, checks every rule file in ./rules (with --catalog, those of the project config).
    Warnings, such as one warehouse shared beyond 100% across files, do not fail the check.
    Exits 1 when any error remains.
    """
    project = load_project(config_path) if with_catalog else None
    if files:
        paths = list(files)
    elif project is not None:
        paths = [_relative(project.rules_path(name)) for name in project.marketplace_names()]
    else:
        paths = _default_rule_files()
    if not paths:
        raise click.UsageError("no rule files given and none found in ./rules")
    results = check_all(paths)
    errors = sum(len(r.errors) for r in results)
    warnings = sum(len(r.diagnostics) - len(r.errors) for r in results)
    coverages = []
    if project is not None:
        coverages = [
            catalog_coverage(r.compiled, catalog_records(project, r.compiled.rules.trade_policy))
            for r in results
            if r.compiled is not None
        ]
    if fmt == "json":
        document: dict[str, Any] = {
            "files": [
                {"file": r.file, "ok": r.ok, "diagnostics": [d.to_dict() for d in r.diagnostics]}
                for r in results
            ],
            "errors": errors,
            "warnings": warnings,
        }
        if project is not None:
            document["coverage"] = [c.to_dict() for c in coverages]
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        render_diagnostics([d for r in results for d in r.diagnostics])
        for r in results:
            if r.ok:
                click.echo(f"{r.file}: ok" + (f" ({len(r.diagnostics)} warnings)" if r.diagnostics else ""))
        for coverage in coverages:
            render_coverage(coverage)
        click.echo(
            f"{len(results)} file(s) checked: {errors} error(s), {warnings} warning(s)", err=errors > 0
        )
    sys.exit(EXIT_ERROR if errors else EXIT_OK)


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to this file instead of stdout.")
def schema(output: Path | None) -> None:
    """Print the JSON Schema of rule files, for editors (yaml-language-server)."""
    if output:
        check_writable(output, "the schema")
    text = json.dumps(rule_file_schema(), indent=2, ensure_ascii=False)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


from cli._apply import apply  # noqa: E402
from cli._log import log  # noqa: E402
from cli._orders import orders  # noqa: E402
from cli._plan import explain, plan  # noqa: E402 - commands register on the group above
from cli._questions import questions  # noqa: E402
from cli._report import report  # noqa: E402
from cli._ruletest import ruletest  # noqa: E402
from cli._sandbox import sandbox  # noqa: E402
from cli._serve import serve  # noqa: E402
from cli._state import state  # noqa: E402
from cli._status import status  # noqa: E402
from cli._sync import sync  # noqa: E402
from cli._unlock import unlock  # noqa: E402
from cli._worker import worker  # noqa: E402

cli.add_command(plan)
cli.add_command(explain)
cli.add_command(ruletest)
cli.add_command(apply)
cli.add_command(sandbox)
cli.add_command(orders)
cli.add_command(questions)
cli.add_command(unlock)
cli.add_command(state)
cli.add_command(serve)
cli.add_command(status)
cli.add_command(log)
cli.add_command(report)
cli.add_command(sync)
cli.add_command(worker)


def configure_logging() -> None:
    """Library warnings (httpx, uvicorn) go to stderr through the secret redactor.

    ``TRADEPOST_LOG=debug`` shows every request httpx makes, still redacted.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("TRADEPOST_LOG", "WARNING").upper())


def main() -> None:
    """Entry point: run the click app and turn any escaping error into a message and exit 1."""
    tolerant_output()
    configure_logging()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except RuleError as exc:
        render_diagnostics(exc.diagnostics)
        sys.exit(EXIT_ERROR)
    except TradepostError as exc:
        click.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        if os.environ.get("TRADEPOST_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {redact(str(exc))}", err=True)
        click.echo("this is a bug in tradepost; rerun with TRADEPOST_DEBUG=1 for details", err=True)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":  # pragma: no cover
    main()
