"""The function library of the rule language.

Each function a rule may call is declared once, next to its code: parameters
and their types (checked by the compiler before any SKU is read), how the
result type follows from the argument types, and a check of the literal
arguments, so that a bad regex or an unknown rounding mode fails
``tradepost check`` instead of every SKU at run time. The first line of each
implementation's docstring is the user-facing doc.

Conventions every function keeps, so that rule authors can rely on them:

* numbers are ``Decimal`` (``int`` is accepted too, for stock quantities), never
  ``float``, and every rounding names its mode instead of trusting the ambient
  decimal context;
* null propagates: a null required argument gives null, unless the doc line
  says otherwise (``gtin_valid``, ``lookup``, ``reject``);
* a failure the rule author can fix raises :class:`EvaluationError` at the
  rule's span, so the invalid SKU points at the same file:line:col as a
  compile-time diagnostic would;
* a function that builds text computes the size of its result first and refuses one
  above :data:`engine.rules._limits.MAX_TEXT` (:class:`LimitExceeded`, TP905), and charges what it
  builds or scans to the SKU's budget; regular expressions run on RE2, whose matching time is
  linear in the text whatever the pattern (no catastrophic backtracking), and a pattern RE2
  cannot run (backreferences, lookaround) is a compile-time diagnostic.
"""

from __future__ import annotations

import decimal
import html
import inspect
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from functools import lru_cache
from typing import Any, NoReturn, TypeAlias, TypeVar

import re2

from engine._diagnostics import EvaluationError, Rejected, Span, did_you_mean
from engine.model._catalog import Stock
from engine.rules._limits import MAX_TEXT, LimitExceeded, charge, text_fits
from engine.rules._types import (
    ANY,
    BOOL,
    NEVER,
    NUMBER,
    STRING,
    Type,
    list_of,
    record_from_model,
    record_of,
    table_of,
    unify,
)

Number: TypeAlias = Decimal | int
Check: TypeAlias = Callable[[Sequence[object]], "str | None"]
Returns: TypeAlias = "Type | Callable[[Sequence[Type]], Type]"
_Impl = TypeVar("_Impl", bound=Callable[..., Any])


@dataclass(frozen=True)
class Param:
    """A parameter; only the ``kind`` of ``type`` is checked against the argument."""

    name: str
    type: Type
    optional: bool = False
    literal: bool = False  # must be written in the rule itself (a rounding mode, a regex)


@dataclass(frozen=True)
class Function:
    """A function of the rule language, as the compiler and ``tradepost explain`` see it.

    ``returns`` is a type, or a callable deriving it from the argument types
    (null in, null out). ``needs_span`` functions take a keyword-only ``at``
    and raise :class:`EvaluationError` at it. ``check`` receives the literal
    arguments (``NOT_LITERAL`` for the others) and returns a message saying
    what is wrong and how to fix it, or None.
    """

    name: str
    params: tuple[Param, ...]
    returns: Type | Callable[[Sequence[Type]], Type]
    impl: Callable[..., Any]
    doc: str
    variadic: bool = False
    needs_span: bool = False
    check: Check | None = None
    fixed: Callable[..., Callable[[Any], Any] | None] | None = None
    """Given the values of every argument after the first, all written in the rule: the function
    of the first alone (the same results, the same errors), or None to run ``impl`` as written.
    The lowering pass calls it once, so a SKU pays nothing for what the rule fixes."""

    def guarded(self, *args: Any, at: Span | None = None, **options: Any) -> Any:
        """``impl`` for arguments the checker could not type (``any``): each checked first.

        A value read from a table of mixed entries may be anything; the argument that does
        not fit is the SKU's failure (:class:`EvaluationError` at ``at``), never a crash.
        """
        for position, value in enumerate(args):
            param = self.params[min(position, len(self.params) - 1)]
            if value is not None and not _fits(param.type.kind, value):
                raise EvaluationError(
                    f"argument '{param.name}' of {self.name}() must be {_KIND_NAMES[param.type.kind]}, "
                    f"not {_describe(value)}",
                    at,
                )
        if self.needs_span:
            options["at"] = at
        return self.impl(*args, **options)


_KIND_NAMES = {"string": "text", "number": "a number", "bool": "true or false"}


def _fits(kind: str, value: object) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, (Decimal, int)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    return True  # any, table: the implementation itself says what it cannot use


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NOT_LITERAL: object = _Sentinel("NOT_LITERAL")
_ABSENT: Any = _Sentinel("<no default>")

ROUNDING_MODES: dict[str, str] = {
    "ceiling": decimal.ROUND_CEILING,
    "down": decimal.ROUND_DOWN,
    "floor": decimal.ROUND_FLOOR,
    "half_down": decimal.ROUND_HALF_DOWN,
    "half_even": decimal.ROUND_HALF_EVEN,
    "half_up": decimal.ROUND_HALF_UP,
    "up": decimal.ROUND_UP,
}
_DIRECTIONS = ("up", "down", "nearest")
_GTIN_LENGTHS = (8, 12, 13, 14)
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)")
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")  # a word may hold an apostrophe: d'água
# Wide enough that no price or quantity is ever rounded by the context itself;
# the thread's context (28 digits, changeable by any library) is never consulted.
_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)


def quantize(value: Decimal, places: int, mode: str = "half_up") -> Decimal:
    """Round ``value`` to ``places`` decimals with a named rounding mode.

    Shared with the price code, so that ``round(x, 2)`` in a rule and the
    price a connector sends are rounded by the same lines.

    Raises:
        ValueError: ``places`` is negative or ``mode`` is not in ``ROUNDING_MODES``.
        TypeError: ``value`` is a float (money is never binary floating point).
    """
    if places < 0:
        raise ValueError(f"places must be 0 or more, not {places}")
    if mode not in ROUNDING_MODES:
        raise ValueError(_mode_problem(mode))
    exponent = Decimal((0, (1,), -places))
    return _number(value).quantize(exponent, rounding=ROUNDING_MODES[mode], context=_CONTEXT)


# Problems with an argument. ``check`` runs them on literals at compile time and the
# implementations on computed values at run time, so both report the same message.


def _as_number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        return None
    return Decimal(value)


def _whole_problem(function: str, what: str, value: object, hint: str = "") -> str | None:
    number = _as_number(value)
    if number is None or (number >= 0 and number % 1 == 0):
        return None
    return f"{function}: {what} must be a whole number of 0 or more, not {_to_text(number)}{hint}"


MAX_PLACES = 20
"""More decimal places than any currency or unit price needs; beyond it the rule is a mistake."""


def _places_problem(function: str) -> Callable[[object], str | None]:
    hint = "; to round to tens or hundreds use round_to(x, 10)"

    def problem(places: object) -> str | None:
        found = _whole_problem(function, "places", places, hint)
        number = _as_number(places)
        if found is None and number is not None and number > MAX_PLACES:
            return f"{function}: places must be at most {MAX_PLACES}, not {_to_text(number)}"
        return found

    return problem


def _choice_problem(what: str, value: object, choices: Sequence[str]) -> str | None:
    if not isinstance(value, str) or value in choices:
        return None
    guess = did_you_mean(value, choices)
    suggestion = f"did you mean '{guess}'? " if guess else ""
    return f"unknown {what} {value!r}; {suggestion}use one of: {', '.join(choices)}"


def _mode_problem(mode: object) -> str | None:
    return _choice_problem("rounding mode", mode, sorted(ROUNDING_MODES))


def _direction_problem(direction: object) -> str | None:
    return _choice_problem("ending direction", direction, _DIRECTIONS)


def _step_problem(step: object) -> str | None:
    number = _as_number(step)
    if number is None or number > 0:
        return None
    return f"round_to: step must be greater than 0, not {_to_text(number)}; e.g. round_to(x, 0.05)"


def _end_problem(end: object) -> str | None:
    number = _as_number(end)
    if number is None or number >= 0:
        return None
    return f"ending: the ending must be 0 or more, not {_to_text(number)}; e.g. ending(x, 0.90)"


def _regex_problem(pattern: object) -> str | None:
    if not isinstance(pattern, str):
        return None
    try:
        _compiled(pattern)
    except (re2.error, UnicodeEncodeError) as error:
        reason = (
            error.args[0].decode("utf-8", "replace")
            if error.args and isinstance(error.args[0], bytes)
            else str(error)
        )
        return (
            f"invalid regular expression {pattern!r}: {reason}; put a backslash before ( ) [ ] . * + ? "
            "to match them literally (patterns are RE2: no backreferences or lookaround)"
        )
    return None


def _number_problem(text: object) -> str | None:
    if not isinstance(text, str) or _read_number(text) is not None:
        return None
    return f'cannot read "{text}" as a number; write digits with at most one "." or ",", as in 12.5 or 12,5'


def _check(*rules: tuple[int, Callable[[object], str | None]]) -> Check:
    """A ``check`` running each problem finder on the literal at its argument position."""

    def check(literals: Sequence[object]) -> str | None:
        for index, problem in rules:
            if index < len(literals) and literals[index] is not NOT_LITERAL:
                message = problem(literals[index])
                if message:
                    return message
        return None

    return check


def _raise_if(problem: str | None, at: Span | None) -> None:
    if problem:
        raise EvaluationError(problem, at)


# Conversions shared by several functions.


def _number(value: Number) -> Decimal:
    if isinstance(value, (Decimal, int)):
        return Decimal(value)
    raise TypeError(f"rule numbers are Decimal or int, never {type(value).__name__}")


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "a table" if isinstance(value, dict) else "a number"


def _to_text(value: object, at: Span | None = None) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        # The digits are already in memory; only a far exponent makes "f" write millions of zeros.
        if value.is_finite() and not -MAX_TEXT < value.adjusted() < MAX_TEXT:
            size = abs(value.adjusted()) + 1
            raise LimitExceeded(f"a number of {size:,} digits is too long to write as text", at)
        return format(value.copy_abs() if value.is_zero() else value, "f")  # never "-0.00"
    if isinstance(value, int):
        return str(value)
    raise EvaluationError(
        f"cannot turn {_describe(value)} into text; text() takes a number, text or true/false", at
    )


def _read_number(text: str) -> Decimal | None:
    compact = "".join(text.split())
    return Decimal(compact.replace(",", ".")) if _NUMBER_TEXT.fullmatch(compact) else None


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is our diagnostic, not a line on stderr
    options.max_mem = 8 << 20  # RE2's own default, stated: a pattern needing more is refused
    return options


_RE2_OPTIONS = _re2_options()


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, _RE2_OPTIONS)


def _grown(text: str, result: str, what: str, at: Span | None) -> str:
    """A case mapping may grow text (ß -> SS) by a bounded factor: check it once built."""
    if len(result) > len(text):
        text_fits(len(result), what, at)
    else:
        charge(len(result), at)
    return result


def _null_in_null_out(result: Type) -> Callable[[Sequence[Type]], Type]:
    """The result type may be null exactly when an argument may be (null propagation)."""
    return lambda args: result.or_null(any(arg.nullable for arg in args))


_LIBRARY: list[Function] = []


def _function(
    name: str,
    *params: Param,
    returns: Returns,
    check: Check | None = None,
    variadic: bool = False,
    fixed: Callable[..., Callable[[Any], Any] | None] | None = None,
) -> Callable[[_Impl], _Impl]:
    """Declare the decorated implementation as the rule function ``name``."""

    def register(impl: _Impl) -> _Impl:
        doc = (inspect.getdoc(impl) or "").splitlines()[0]
        # Derived, not declared, so the flag cannot disagree with the signature.
        needs_span = "at" in inspect.signature(impl).parameters
        _LIBRARY.append(Function(name, params, returns, impl, doc, variadic, needs_span, check, fixed))
        return impl

    return register


_X = Param("x", NUMBER)
_PLACES = Param("places", NUMBER, optional=True)
_MODE = Param("mode", STRING, optional=True, literal=True)
_TEXT = Param("text", STRING)
_NUMBER_OUT = _null_in_null_out(NUMBER)
_STRING_OUT = _null_in_null_out(STRING)
_BOOL_OUT = _null_in_null_out(BOOL)


# Numbers


def _round_places(function: str, x: Number, places: Number, mode: str, at: Span | None) -> Decimal:
    _raise_if(_places_problem(function)(places) or _mode_problem(mode), at)
    try:
        return quantize(_number(x), int(places), mode)
    except decimal.InvalidOperation:
        raise EvaluationError(
            f"{function}: {_to_text(_number(x))} has too many digits to round", at
        ) from None


@_function(
    "round",
    _X,
    _PLACES,
    _MODE,
    returns=_NUMBER_OUT,
    check=_check((1, _places_problem("round")), (2, _mode_problem)),
)
def _round(
    x: Number | None, places: Number | None = 0, mode: str | None = "half_up", *, at: Span | None = None
) -> Decimal | None:
    """Round to `places` decimals (default 0) with a rounding mode (default half_up)."""
    if x is None or places is None or mode is None:
        return None
    return _round_places("round", x, places, mode, at)


@_function("ceil", _X, _PLACES, returns=_NUMBER_OUT, check=_check((1, _places_problem("ceil"))))
def _ceil(x: Number | None, places: Number | None = 0, *, at: Span | None = None) -> Decimal | None:
    """Round up, towards +infinity, to `places` decimals (default 0)."""
    return None if x is None or places is None else _round_places("ceil", x, places, "ceiling", at)


@_function("floor", _X, _PLACES, returns=_NUMBER_OUT, check=_check((1, _places_problem("floor"))))
def _floor(x: Number | None, places: Number | None = 0, *, at: Span | None = None) -> Decimal | None:
    """Round down, towards -infinity, to `places` decimals (default 0)."""
    return None if x is None or places is None else _round_places("floor", x, places, "floor", at)


@_function("min", Param("a", NUMBER), Param("b", NUMBER), returns=_NUMBER_OUT, variadic=True)
def _min(*values: Number | None) -> Decimal | None:
    """The smallest of the numbers; null if any of them is null."""
    numbers = [_number(v) for v in values if v is not None]
    return min(numbers) if len(numbers) == len(values) else None


@_function("max", Param("a", NUMBER), Param("b", NUMBER), returns=_NUMBER_OUT, variadic=True)
def _max(*values: Number | None) -> Decimal | None:
    """The largest of the numbers; null if any of them is null."""
    numbers = [_number(v) for v in values if v is not None]
    return max(numbers) if len(numbers) == len(values) else None


@_function("abs", _X, returns=_NUMBER_OUT)
def _abs(x: Number | None) -> Decimal | None:
    """The number without its sign."""
    return None if x is None else abs(_number(x))


@_function(
    "round_to",
    _X,
    Param("step", NUMBER),
    _MODE,
    returns=_NUMBER_OUT,
    check=_check((1, _step_problem), (2, _mode_problem)),
)
def _round_to(
    x: Number | None, step: Number | None, mode: str | None = "half_up", *, at: Span | None = None
) -> Decimal | None:
    """Round to a multiple of `step` (0.05, 0.5, 5) with a rounding mode (default half_up)."""
    if x is None or step is None or mode is None:
        return None
    _raise_if(_step_problem(step) or _mode_problem(mode), at)
    step = _number(step)
    with localcontext(_CONTEXT):
        multiple = (_number(x) / step).to_integral_value(rounding=ROUNDING_MODES[mode])
        return (multiple * step).quantize(step)  # quantize takes only the exponent of its argument


def _ender(end: Number, direction: str) -> Callable[[Number | None], Decimal | None]:
    """``ending(x, end, direction)`` as a function of ``x`` alone, its step worked out once (``end`` and
    ``direction`` found valid): what :func:`_ending` runs, and what a rule's ``ending`` with both
    written in it compiles to (:attr:`Function.fixed`)."""
    end = _number(end)
    # An ending repeats every power of ten above it: 0.90 every 1, 9.99 every 10, 99 every 100.
    step = _ONE if end < 1 else _CONTEXT.power(Decimal(10), end.adjusted() + 1)
    c = _CONTEXT

    def ended(x: Number | None) -> Decimal | None:
        if x is None:
            return None
        value = x if x.__class__ is Decimal else _number(x)
        # Every operation names the 60-digit context: the thread's own is never consulted. A step
        # of 1 (an ending below 1, the usual one) divides and multiplies nothing: both are left out.
        turns = c.subtract(value, end) if step is _ONE else c.divide(c.subtract(value, end), step)
        turns = turns.to_integral_value(decimal.ROUND_FLOOR, c)
        below = c.add(turns if step is _ONE else c.multiply(turns, step), end)
        above = below if below == value else c.add(below, step)
        if direction == "down":
            return below
        if direction == "up":
            return above
        return below if c.subtract(value, below) < c.subtract(above, value) else above

    return ended


def _fixed_ending(end: object, direction: object = "up") -> Callable[[Number | None], Decimal | None] | None:
    """:func:`_ender` for an ending and a direction written in the rule, when both are valid (else
    None: the call runs as written, and says what is wrong for each SKU)."""
    if not isinstance(end, Decimal | int) or isinstance(end, bool) or not isinstance(direction, str):
        return None
    if _end_problem(end) or _direction_problem(direction):
        return None
    return _ender(end, direction)


@_function(
    "ending",
    _X,
    Param("end", NUMBER),
    Param("direction", STRING, optional=True, literal=True),
    returns=_NUMBER_OUT,
    check=_check((1, _end_problem), (2, _direction_problem)),
    fixed=_fixed_ending,
)
def _ending(
    x: Number | None, end: Number | None, direction: str | None = "up", *, at: Span | None = None
) -> Decimal | None:
    """Price ending: ending(134.20, 0.90) is 134.90; direction 'up' (default), 'down' or 'nearest'.

    The result keeps the exponent of ``end``, so ending(x, 0.90) always has cents.
    Nearest breaks ties upwards: a shop would rather not lose the margin.
    """
    global _last_ending
    if x is None or end is None or direction is None:
        return None
    last = _last_ending  # a rule's ending is one constant object: known without hashing it
    if end is last[0] and direction == last[1]:
        return last[2](x)
    # By the text of the ending: 0.9 and 0.90 are equal numbers, but give results of other exponents.
    key = (str(end), direction) if isinstance(end, Decimal | int) else None
    ender = _ENDERS.get(key) if key is not None else None
    if ender is None:
        # First use of this ending: validate once (the compiler already did for literals).
        _raise_if(_end_problem(end) or _direction_problem(direction), at)
        ender = _ender(end, direction)
        if key is not None and len(_ENDERS) < 1024:
            _ENDERS[key] = ender
    _last_ending = (end, direction, ender)  # one tuple, swapped whole: safe to read from any thread
    return ender(x)


_ONE = Decimal(1)
_ENDERS: dict[tuple[str, str], Callable[[Number | None], Decimal | None]] = {}
"""Validated (end as written, direction) pairs and their :func:`_ender`: a rule uses one or two
endings for every SKU."""
_last_ending: tuple[object, object, Callable[[Number | None], Decimal | None]] = (None, None, lambda x: None)
"""The last ending asked for and its :func:`_ender`, known again by identity."""


# Text


@_function("lower", _TEXT, returns=_STRING_OUT)
def _lower(text: str | None, *, at: Span | None = None) -> str | None:
    """The text in lower case."""
    return None if text is None else _grown(text, text.lower(), "lower()", at)


@_function("upper", _TEXT, returns=_STRING_OUT)
def _upper(text: str | None, *, at: Span | None = None) -> str | None:
    """The text in upper case."""
    return None if text is None else _grown(text, text.upper(), "upper()", at)


@_function("title", _TEXT, returns=_STRING_OUT)
def _title(text: str | None, *, at: Span | None = None) -> str | None:
    """The text with the first letter of each word raised and the rest lowered.

    Unlike str.title(), an apostrophe or a digit does not start a word: "d'água 2gb" gives
    "D'água 2gb", not "D'Água 2Gb".
    """
    if text is None:
        return None
    return _grown(text, _WORD.sub(lambda word: word[0].capitalize(), text), "title()", at)


@_function("trim", _TEXT, returns=_STRING_OUT)
def _trim(text: str | None) -> str | None:
    """The text without leading and trailing whitespace."""
    return None if text is None else text.strip()


@_function("replace", _TEXT, Param("old", STRING), Param("new", STRING), returns=_STRING_OUT)
def _replace(text: str | None, old: str | None, new: str | None, *, at: Span | None = None) -> str | None:
    """The text with every `old` replaced by `new` (an empty `old` changes nothing)."""
    if text is None or old is None or new is None:
        return None
    if not old:
        return text
    # The size of the result first: nested replaces grow text geometrically.
    count = text.count(old)
    text_fits(len(text) + count * (len(new) - len(old)), "replace()", at)
    return text.replace(old, new)


@_function(
    "truncate",
    _TEXT,
    Param("length", NUMBER),
    Param("end", STRING, optional=True),
    returns=_STRING_OUT,
    check=_check((1, lambda length: _whole_problem("truncate", "length", length))),
)
def _truncate(
    text: str | None, length: Number | None, end: str | None = "", *, at: Span | None = None
) -> str | None:
    """Shorten text to at most `length` characters including `end`, cutting between words.

    A single word longer than the room is cut hard. When `end` itself does not
    fit, the text is cut to `length` without it: the content is worth more
    than the ellipsis.
    """
    if text is None or length is None or end is None:
        return None
    _raise_if(_whole_problem("truncate", "length", length), at)
    limit = int(length)
    if len(text) <= limit:
        return text
    room = limit - len(end)
    if room <= 0:
        return text[:limit]
    cut = text[:room]
    mid_word = not text[room].isspace() and not cut[-1].isspace()
    words = cut.rsplit(None, 1)
    if mid_word and len(words) == 2:
        cut = words[0]
    return cut.rstrip() + end


@_function("slug", _TEXT, returns=_STRING_OUT)
def _slug(text: str | None) -> str | None:
    """The text as a URL slug: "São Paulo!" gives "sao-paulo"."""
    if text is None:
        return None
    # casefold first ("ß" -> "ss"), lower after: compatibility forms decompose to capitals ("№" -> "No").
    charge(len(text))
    folded = unicodedata.normalize("NFKD", text.casefold()).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")


@_function("len", Param("value", ANY), returns=_NUMBER_OUT)
def _len(value: object, *, at: Span | None = None) -> int | None:
    """The number of characters of text, items of a list or entries of a table."""
    if value is None:
        return None
    if isinstance(value, (str, list, tuple, dict)):
        return len(value)
    raise EvaluationError(f"len() takes text, a list or a table, not {_describe(value)}", at)


@_function("contains", Param("value", ANY), Param("part", ANY), returns=_BOOL_OUT)
def _contains(value: object, part: object, *, at: Span | None = None) -> bool | None:
    """Whether text holds a substring, a list an item or a table a key (case-sensitive)."""
    if value is None or part is None:
        return None
    if isinstance(value, (list, tuple)):
        return part in value
    if isinstance(value, (str, dict)):
        return _to_text(part, at) in value
    raise EvaluationError(f"contains() looks inside text, a list or a table, not {_describe(value)}", at)


@_function("strip_html", _TEXT, returns=_STRING_OUT)
def _strip_html(text: str | None, *, at: Span | None = None) -> str | None:
    """The text of HTML without its markup: tags dropped, entities decoded, one line per block.

    "<p>Leve &amp; macio</p><p>Algodão</p>" gives "Leve & macio\nAlgodão". Scripts, styles and
    comments are dropped with their content; a "<" that opens no tag ("3 < 5") is kept.
    One pass with str.find, so linear time whatever the input; html.unescape decodes entities.
    """
    if text is None:
        return None
    charge(len(text), at)
    return _plain_text(text)


@lru_cache(maxsize=4)
def _plain_text(text: str) -> str:
    """:func:`_strip_html` of a text, kept for the next few calls: a catalog lists a product's SKUs
    one after another, each with the product's description, so most calls of a plan repeat the
    last (a hash and a compare, not a scan). The budget is charged by the caller all the same."""
    lines = (" ".join(line.split()) for line in html.unescape(_without_markup(text)).split("\n"))
    return "\n".join(line for line in lines if line)


def _without_markup(text: str) -> str:
    """``text`` without its tags (a block's a newline, a cell's a space), comments, scripts, styles.

    Every search starts where the last one ended and a search that finds nothing ends the
    scan, so no character is read twice: a million unclosed "<a " cost one pass, not a million.
    Tag names are compared with their ASCII letters lowered; the whole text is lowered (the
    same length, unlike str.lower()) only when a script or style needs its closing tag found.
    """
    lowered: str | None = None
    out: list[str] = []
    at = 0
    while (found := _TAG_START.search(text, at)) is not None:
        start = found.start()
        out.append(text[at:start])
        if text.startswith("<!--", start):
            close = text.find("-->", start + 4)
            at = len(text) if close < 0 else close + 3  # an unclosed comment hides the rest
            out.append(" ")
            continue
        end = text.find(">", start)
        if end < 0:  # no tag closes: the rest is text
            at = start
            break
        words = text[start + 1 : end].split(None, 1)
        name = _ascii_lower(words[0].strip("/")) if words else ""
        at = end + 1
        if name in ("script", "style") and not text.startswith("</", start):
            lowered = text.translate(_ASCII_LOWER) if lowered is None else lowered
            close = lowered.find("</" + name, at)
            after = text.find(">", close) if close >= 0 else -1
            at = len(text) if after < 0 else after + 1
        out.append("\n" if name in _BLOCKS else " " if name in _CELLS else "")
    out.append(text[at:])
    return "".join(out)


def _ascii_lower(name: str) -> str:
    """``name`` with its ASCII letters lowered, any other character kept (str.lower() would make
    the Kelvin sign a "k", and a tag name of it a block)."""
    return name.lower() if name.isascii() else name.translate(_ASCII_LOWER)


_TAG_START = re.compile(r"<[A-Za-z/!?]")
"""Where a tag may start: a "<" before anything else ("3 < 5") is text. Two characters, no backtracking."""
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_BLOCKS = frozenset(
    {
        "br",
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "tr",
        "table",
        "blockquote",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    }
)
"""Tags that start or end a line of the plain text."""
_CELLS = frozenset({"td", "th", "img"})
"""Tags between two words; any other tag (<b>, <span>) may sit inside one: "al<b>go</b>" is "algo"."""


@_function("startswith", _TEXT, Param("prefix", STRING), returns=_BOOL_OUT)
def _startswith(text: str | None, prefix: str | None) -> bool | None:
    """Whether the text starts with `prefix` (case-sensitive)."""
    return None if text is None or prefix is None else text.startswith(prefix)


@_function("endswith", _TEXT, Param("suffix", STRING), returns=_BOOL_OUT)
def _endswith(text: str | None, suffix: str | None) -> bool | None:
    """Whether the text ends with `suffix` (case-sensitive)."""
    return None if text is None or suffix is None else text.endswith(suffix)


@_function(
    "matches",
    _TEXT,
    Param("pattern", STRING, literal=True),
    returns=_BOOL_OUT,
    check=_check((1, _regex_problem)),
)
def _matches(text: str | None, pattern: str | None, *, at: Span | None = None) -> bool | None:
    """Whether the regular expression `pattern` matches anywhere in the text."""
    if text is None or pattern is None:
        return None
    _raise_if(_regex_problem(pattern), at)
    charge(len(text), at)  # RE2 scans in linear time; the budget bounds how often
    try:
        return _compiled(pattern).search(text) is not None
    except UnicodeEncodeError:
        raise EvaluationError("matches(): the text holds a character that is not valid Unicode", at) from None


@_function("text", Param("value", ANY), returns=_STRING_OUT)
def _text(value: object, *, at: Span | None = None, places: int | None = None) -> str | None:
    """A number, text or true/false as text: 12.50 gives "12.50", true gives "true".

    An amount of money (``price.selling``) keeps its currency's minor units: 216.9 gives
    "216.90" in BRL, "217" is never made of it (digits are only added, never rounded away).
    The compiler passes ``places`` for those; any other number is written as it is.
    """
    if (
        places is not None
        and isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() < _CONTEXT.prec - places
    ):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent > -places:
            value = value.quantize(Decimal(1).scaleb(-places), context=_CONTEXT)
    return None if value is None else _to_text(value, at)


@_function("number", _TEXT, returns=_NUMBER_OUT, check=_check((0, _number_problem)))
def _parse_number(text: object, *, at: Span | None = None) -> Decimal | None:
    """Read a number from text: "12.5" and "12,5" both give 12.5; anything else makes the SKU invalid."""
    number = _as_number(text)
    if text is None or number is not None:
        return number
    if isinstance(text, str):
        _raise_if(_number_problem(text), at)
        return _read_number(text)
    raise EvaluationError(f"cannot read {_describe(text)} as a number", at)


# Stock


@_function(
    "available_in",
    Param("stock", record_of(record_from_model(Stock))),
    Param("warehouses", list_of(STRING)),
    returns=_NUMBER_OUT,
)
def _available_in(stock: object, warehouses: object, *, at: Span | None = None) -> int | None:
    """Units available in the listed warehouses, as the stock step counts them: available_in(stock, ["main"]).

    ``stock.available`` counts every warehouse; a ``select`` that should agree with
    ``stock.warehouses`` counts the same ones with this.
    """
    if stock is None or warehouses is None:
        return None
    if not isinstance(stock, Stock):
        raise EvaluationError(f"available_in() counts the units of 'stock', not {_describe(stock)}", at)
    if warehouses is not _last_ids[0] and not _warehouse_ids(warehouses):
        raise EvaluationError('available_in() takes a list of warehouse ids, as in ["main", "sp_cd"]', at)
    return available_units(stock, warehouses)  # type: ignore[arg-type]  # checked just above


def _warehouse_ids(warehouses: object) -> bool:
    """Whether ``warehouses`` is a list of ids; a tuple found so is remembered (a rule's literal list
    is one tuple for every SKU: checked once, not per SKU)."""
    global _last_ids
    if not isinstance(warehouses, (list, tuple)) or not all(isinstance(w, str) for w in warehouses):
        return False
    if isinstance(warehouses, tuple):
        _last_ids = (warehouses,)
    return True


_last_ids: tuple[object] = (None,)


def available_units(stock: Stock, warehouses: Sequence[str] | None) -> int:
    """``stock.available_in(warehouses)``, kept for the next ask: a rule file's ``select`` (through
    ``available_in``) and its stock step sum the same warehouses of the same record, one after the
    other. The stock is a frozen model, so the same object has the same units."""
    global _last_sum
    last = _last_sum
    if stock is last[0] and warehouses == last[1]:
        return last[2]
    units = stock.available_in(warehouses)
    _last_sum = (stock, warehouses, units)  # one tuple, swapped whole: safe to read from any thread
    return units


_last_sum: tuple[Stock | None, Sequence[str] | None, int] = (None, None, 0)


# Tables, codes, rejection


def _lookup_type(args: Sequence[Type]) -> Type:
    tables = [arg for arg in args[:2] if arg.kind in ("table", "map")]
    keys = [arg for arg in args[:2] if arg.kind not in ("table", "map")]
    item = (tables[0].item if tables else None) or ANY
    if len(args) > 2:
        return unify(item, args[2])
    return item.or_null(item.nullable or any(k.nullable for k in keys))


@_function(
    "lookup",
    Param("table", table_of(ANY)),
    Param("key", ANY),
    Param("default", ANY, optional=True),
    returns=_lookup_type,
)
def _lookup(
    table: object,
    key: object,
    default: Any = _ABSENT,
    *,
    at: Span | None = None,
    table_name: str | None = None,
) -> Any:
    """The table's entry for `key`; a key missing with no default makes the SKU invalid.

    Numbers are looked up by their text (tables come from YAML, keys are text).
    A null key gives the default, or null without one, as every function does
    with null: a SKU without the specification simply has no such attribute. A key that is present but not
    in the table is the mistake worth stopping for.
    """
    # Text found in a table, the usual case, first: the checks below would give the same entry.
    if key.__class__ is dict and table.__class__ is str and table in key:
        return key[table]  # the pipe `x | lookup(colors)` passes the key first
    if table.__class__ is dict and key.__class__ is str and key in table:
        return table[key]
    if not isinstance(table, dict) and isinstance(key, dict):
        table, key = key, table  # the pipe `x | lookup(colors)` passes the key first
    if not isinstance(table, dict):
        raise EvaluationError(f"lookup() needs a table, not {_describe(table)}", at)
    if key is None:
        return None if default is _ABSENT else default
    wanted = _to_text(key, at)
    if wanted in table:
        return table[wanted]
    if default is not _ABSENT:
        return default
    where = f"table '{table_name}'" if table_name else "the table"
    shown = repr(wanted)
    fix = f"add {shown} to {where} or give lookup a default"
    raise EvaluationError(
        f'no entry for {shown} in {where}; {fix}: lookup({table_name or "table"}, key, "...")',
        at,
        code="TP902",
    )


@_function("gtin_valid", Param("code", ANY), returns=BOOL)
def _gtin_valid(code: object) -> bool:
    """Whether the code is an EAN-8, UPC-A, EAN-13 or GTIN-14 with a correct check digit; false for null.

    A number is read as its digits, so a UPC-A stored as a number has lost its
    leading zero and is not valid: codes belong in text.
    """
    digits = code if type(code) is str else _to_text(code) if _as_number(code) is not None else code
    if not isinstance(digits, str) or len(digits) not in _GTIN_LENGTHS:
        return False
    if not (digits.isascii() and digits.isdigit()):
        return False
    # GS1 check digit: weights 3, 1, 3, ... from the right, the check digit excluded. The ASCII
    # codes are summed (in C) and the weighted codes of "0" taken off: 48 * 3 per odd place, 48
    # per even one.
    body = digits[-2::-1].encode("ascii")
    odd, even = body[0::2], body[1::2]
    total = 3 * (sum(odd) - 48 * len(odd)) + sum(even) - 48 * len(even)
    return (10 - total % 10) % 10 == ord(digits[-1]) - 48


@_function("reject", Param("message", STRING), returns=NEVER)
def _reject(message: object, *, at: Span | None = None) -> NoReturn:
    """Refuse the SKU with this message; it is listed as rejected, with the rule's location."""
    raise Rejected("rejected by the rule file" if message is None else _to_text(message, at), at)


FUNCTIONS: dict[str, Function] = {
    function.name: function for function in sorted(_LIBRARY, key=lambda f: f.name)
}
