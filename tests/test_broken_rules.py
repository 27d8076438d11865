"""Broken rule files and the exact diagnostics each must produce (tests/fixtures/broken/).

Every case is a small valid rule file with one mistake (a few have several, to show that
all problems of a file are reported in one run). Its leading comment lines say what the
compiler must report:

    # expect: TP302 12:9                           a diagnostic in the case file itself
    # expect: TP112 includes/bad_tables.yaml:3:5    one in another file, relative to the case's folder
    # expect-text: did you mean 'brand'?           text that some message or hint must contain

Positions are 1-based and name the first character of the wrong token, as a demanding user
would want the caret placed; they were not copied from the compiler's output. The set of
(code, file, line, column) reported must equal the expected set, errors and warnings alike.
Only ``NN_*.yaml`` files are cases; ``includes/`` holds the files they include.

Cases where the compiler is known to be wrong are marked ``xfail(strict=True)`` with the
bug in the reason: the suite stays green, the bug stays visible, and fixing it turns the
case into an unexpected pass that asks for the mark to be removed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import engine
from cli.main import cli
from tests._harness import tradepost_process

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "broken"
CASES = sorted(FIXTURES.glob("[0-9][0-9]*_*.yaml"))

MIN_CASES = 36
CODES_COVERED = 38  # distinct codes in the corpus' expectations (see test_corpus_size_and_coverage)

KNOWN_BUGS: dict[str, str] = {}

_EXPECT = re.compile(r"^# expect: (?P<code>TP\d{3}) (?:(?P<file>\S+):)?(?P<line>\d+):(?P<column>\d+)\s*$")
_EXPECT_TEXT = re.compile(r"^# expect-text: (?P<text>.+?)\s*$")


@dataclass(frozen=True, order=True)
class Location:
    """Where a diagnostic is: its code, its file (relative to FIXTURES when inside it), line and column."""

    code: str
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.code} {self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Expectation:
    """What a case declares in its leading comment lines."""

    locations: frozenset[Location]
    texts: tuple[str, ...]


def _relative(path: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(FIXTURES).as_posix()
    except ValueError:
        return str(resolved)


def parse_expectations(path: Path) -> Expectation:
    """Read the ``# expect:`` and ``# expect-text:`` lines of the leading comment block of ``path``."""
    locations: set[Location] = set()
    texts: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.startswith("#"):
            break
        if not raw.startswith("# expect"):
            continue
        if match := _EXPECT.match(raw):
            target = path.parent / match["file"] if match["file"] else path
            line, column = int(match["line"]), int(match["column"])
            locations.add(Location(match["code"], _relative(target), line, column))
        elif match := _EXPECT_TEXT.match(raw):
            texts.append(match["text"])
        else:
            raise ValueError(f"{path.name}: malformed expectation line {raw!r}")
    return Expectation(frozenset(locations), tuple(texts))


def reported(diagnostics: list[engine.Diagnostic]) -> list[Location]:
    """The diagnostics as locations, in the order the compiler reported them."""
    return [Location(d.code, _relative(Path(d.span.file)), d.span.line, d.span.column) for d in diagnostics]


def _case_params() -> list[Any]:
    params = []
    for case in CASES:
        reason = KNOWN_BUGS.get(case.name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def _case(suffix: str) -> Path:
    (found,) = [case for case in CASES if case.name.endswith(suffix)]
    return found


@pytest.mark.parametrize("case", _case_params())
def test_case_reports_exactly_the_expected_diagnostics(case: Path) -> None:
    expected = parse_expectations(case)
    assert expected.locations, f"{case.name} declares no '# expect:' line"
    result = engine.check_rules(case)
    actual = reported(result.diagnostics)
    rendered = "\n".join(d.render() for d in result.diagnostics)
    assert sorted(set(actual)) == sorted(expected.locations), rendered
    assert len(actual) == len(set(actual)), "the same problem is reported more than once"
    assert not result.ok
    for text in expected.texts:
        assert any(text in d.message or text in (d.hint or "") for d in result.diagnostics), (
            f"no message or hint contains {text!r}:\n{rendered}"
        )


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_diagnostic_shows_its_source_line_and_a_caret_under_its_column(case: Path) -> None:
    result = engine.check_rules(case)
    assert result.diagnostics
    for diagnostic in result.diagnostics:
        assert diagnostic.message.strip(), diagnostic
        assert diagnostic.code.startswith("TP"), diagnostic
        file_lines = Path(diagnostic.span.file).read_text(encoding="utf-8").splitlines()
        source = file_lines[diagnostic.span.line - 1]
        assert diagnostic.source_line == source
        rendered = diagnostic.render().split("\n")
        assert rendered[0].startswith(f"{diagnostic.span}: {diagnostic.severity}[{diagnostic.code}]: ")
        gutter = f"{diagnostic.span.line:>4} | "
        assert rendered[1] == gutter + source.rstrip("\n").expandtabs(1)
        assert rendered[2].index("^") == len(gutter) + diagnostic.span.column - 1, diagnostic.render()


def test_corpus_size_and_coverage() -> None:
    assert len(CASES) >= MIN_CASES
    assert len({case.name.split("_")[0] for case in CASES}) == len(CASES), "two cases share a number"
    codes = {location.code for case in CASES for location in parse_expectations(case).locations}
    assert len(codes) >= CODES_COVERED, sorted(codes)
    for name in KNOWN_BUGS:
        assert (FIXTURES / name).is_file(), f"KNOWN_BUGS names a case that does not exist: {name}"


def test_expectation_lines_are_parsed_with_and_without_a_file(tmp_path: Path) -> None:
    case = tmp_path / "01_example.yaml"
    case.write_text(
        "# A comment that is not an expectation.\n"
        "# expect: TP302 12:9\n"
        "# expect: TP112 includes/bad_tables.yaml:3:5\n"
        "# expect-text: did you mean 'brand'?\n"
        "marketplace: x\n"
        "# expect: TP999 1:1\n",
        encoding="utf-8",
    )
    parsed = parse_expectations(case)
    assert parsed.locations == {
        Location("TP302", str(case.resolve()), 12, 9),
        Location("TP112", str((tmp_path / "includes" / "bad_tables.yaml").resolve()), 3, 5),
    }
    assert parsed.texts == ("did you mean 'brand'?",)
    case.write_text("# expect: TP302 line 12\n", encoding="utf-8")
    with pytest.raises(ValueError, match="malformed"):
        parse_expectations(case)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_check_command_exits_1_without_a_traceback(case: Path) -> None:
    result = CliRunner().invoke(cli, ["check", str(case)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "error[TP" in result.output
    assert "1 file(s) checked:" in result.output


def test_check_command_as_a_process_exits_1_and_prints_every_problem() -> None:
    case = _case("_several_mistakes.yaml")
    completed = tradepost_process("check", str(case))
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    for location in parse_expectations(case).locations:
        assert f":{location.line}:{location.column}: error[{location.code}]" in completed.stdout


_JSON_KEYS = {"file", "line", "column", "end_line", "end_column", "code", "severity", "message"}


def test_check_json_gives_file_line_column_and_code_of_every_problem() -> None:
    case = _case("_several_mistakes.yaml")
    result = CliRunner().invoke(cli, ["check", "--format", "json", str(case)])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    expected = parse_expectations(case).locations
    assert document["errors"] == len(expected)
    assert document["warnings"] == 0
    (entry,) = document["files"]
    assert entry["file"] == str(case)
    assert entry["ok"] is False
    found = set()
    for diagnostic in entry["diagnostics"]:
        assert set(diagnostic) >= _JSON_KEYS
        assert isinstance(diagnostic["line"], int) and isinstance(diagnostic["column"], int)
        assert diagnostic["severity"] == "error"
        assert diagnostic["message"]
        found.add(
            Location(
                diagnostic["code"],
                _relative(Path(diagnostic["file"])),
                diagnostic["line"],
                diagnostic["column"],
            )
        )
    assert found == expected
