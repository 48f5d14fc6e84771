"""Searching trainings like MLflow's ``search_runs``: a filter language parsed into SQLAlchemy expressions.

``params.max_depth >= 8 and metrics.val_auc > 0.9 and status = 'finished'``: a hand-written
tokenizer and recursive-descent parser build a small tree, which :func:`compile_filter` turns into
SQL expressions with bound parameters only (no SQL is ever built from the text). Errors name the
bad token and its column: ``where: unexpected 'andd' at column 19``.

Grammar (keywords in any case)::

    expr       := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" expr ")" | comparison
    comparison := field ( OP literal | ["not"] "like" STRING | ["not"] "in" "(" literal ("," literal)* ")"
                        | "is" ["not"] "null" )
    field      := params.KEY | metrics.KEY[.last|.best|.min|.max] | tags.KEY | ATTRIBUTE
    literal    := STRING | NUMBER          OP := = | != | <> | < | <= | > | >=

A key with characters other than letters, digits, ``_ - . / : @`` is quoted with backticks
(``params.`my key```). Params compare numerically when the literal is a number (a param stored as
the number 8 or, as MLflow stores them, the string "8"), as text otherwise. ``metrics.KEY`` is the
last value (``metric_summaries``, never the history); ``.best`` follows the model's goal for it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, and_, case, cast, exists, not_, or_, select
from sqlalchemy.sql import ColumnElement, Select

from .. import _schema as schema
from .._errors import ValidationError

#: Attributes of a training, by the name a filter uses.
ATTRIBUTES = ("id", "status", "model", "version", "started_at", "ended_at", "duration", "run_by", "host", "git_commit")
_NUMERIC = {"id", "version", "duration"}
_TIMES = {"started_at", "ended_at"}
AGGREGATES = ("last", "best", "min", "max")
_NUMBER_TEXT = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<field>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]+`|[A-Za-z0-9_\-/:@]+))*)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),])""",
    re.VERBOSE,
)
KEYWORDS = {"and", "or", "not", "like", "in", "is", "null", "asc", "desc"}


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, field, keyword, op, punct, end
    text: str
    column: int  # 1-based


def tokenize(text: str, what: str) -> list[Token]:
    """The tokens of ``text``; ValidationError at the first character that starts none."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValidationError(f"{what}: unexpected {text[pos]!r} at column {pos + 1}", value=text)
        kind = m.lastgroup or ""
        if kind != "space":
            word = m.group()
            if kind == "field" and word.lower() in KEYWORDS:
                kind = "keyword"
            tokens.append(Token(kind, word, pos + 1))
        pos = m.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


# ------------------------------------------------------------------ the tree
@dataclass(frozen=True)
class Field:
    space: str  # "attr", "params", "metrics", "tags"
    key: str
    aggregate: str = "last"
    column: int = 0


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # = != < <= > >= like notlike in notin null notnull
    values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Logic:
    op: str  # and, or, not
    parts: tuple[Any, ...]


def _unquote(key: str) -> str:
    return key[1:-1] if len(key) > 1 and key[0] == key[-1] == "`" else key


def parse_field(token: Token, what: str) -> Field:
    """``params.KEY``, ``metrics.KEY[.agg]``, ``tags.KEY`` or an attribute name."""
    head, dot, rest = token.text.partition(".")
    space = head.lower()
    if not dot:
        if space not in ATTRIBUTES:
            raise ValidationError(
                f"{what}: unknown attribute {token.text!r} at column {token.column} "
                f"(use params.KEY, metrics.KEY, tags.KEY or one of {', '.join(ATTRIBUTES)})",
                value=token.text,
            )
        return Field("attr", space, column=token.column)
    if space in ("param", "metric", "tag"):
        space += "s"
    if space not in ("params", "metrics", "tags"):
        raise ValidationError(f"{what}: unknown field {token.text!r} at column {token.column}", value=token.text)
    aggregate = "last"
    if space == "metrics":
        key, _, last = rest.rpartition(".")
        if key and last.lower() in AGGREGATES:
            rest, aggregate = key, last.lower()
    if rest.count("`") and not (rest.startswith("`") and rest.endswith("`")):
        raise ValidationError(f"{what}: badly quoted key in {token.text!r} at column {token.column}", value=token.text)
    return Field(space, _unquote(rest), aggregate, token.column)


class Parser:
    """Recursive descent over the tokens; each method consumes what its grammar rule names."""

    def __init__(self, text: str, what: str) -> None:
        self.text, self.what = text, what
        self.tokens = tokenize(text, what)
        self.i = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def fail(self, expected: str | None = None) -> ValidationError:
        t = self.token
        found = "the end" if t.kind == "end" else repr(t.text)
        where = f"column {t.column}"
        message = f"{self.what}: unexpected {found} at {where}"
        if expected:
            message += f" (expected {expected})"
        return ValidationError(message, value=self.text)

    def keyword(self, *words: str) -> str | None:
        t = self.token
        if t.kind == "keyword" and t.text.lower() in words:
            self.i += 1
            return t.text.lower()
        return None

    def punct(self, char: str) -> bool:
        if self.token.kind == "punct" and self.token.text == char:
            self.i += 1
            return True
        return False

    def done(self) -> None:
        if self.token.kind != "end":
            raise self.fail("and, or, or the end")

    def expression(self) -> Any:
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Logic("or", tuple(parts))

    def conjunction(self) -> Any:
        parts = [self.negation()]
        while self.keyword("and"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else Logic("and", tuple(parts))

    def negation(self) -> Any:
        if self.keyword("not"):
            return Logic("not", (self.negation(),))
        if self.punct("("):
            inner = self.expression()
            if not self.punct(")"):
                raise self.fail("')'")
            return inner
        return self.comparison()

    def field(self) -> Field:
        if self.token.kind != "field":
            raise self.fail("params.KEY, metrics.KEY, tags.KEY or an attribute")
        found = parse_field(self.token, self.what)
        self.i += 1
        return found

    def literal(self) -> Any:
        t = self.token
        if t.kind == "number":
            self.i += 1
            if any(c in t.text for c in ".eE"):
                return float(t.text)
            if not -(2**63) <= (number := int(t.text)) < 2**63:
                raise self.fail("a number that fits 64 bits")
            return number
        if t.kind == "string":
            self.i += 1
            return t.text[1:-1].replace(t.text[0] * 2, t.text[0])
        raise self.fail("a 'string' or a number")

    def comparison(self) -> Compare:
        field = self.field()
        t = self.token
        if t.kind == "op":
            self.i += 1
            return Compare(field, "!=" if t.text == "<>" else t.text, (self.literal(),))
        negated = self.keyword("not") is not None
        if self.keyword("like"):
            if self.token.kind != "string":
                raise self.fail("a 'pattern'")
            return Compare(field, "notlike" if negated else "like", (self.literal(),))
        if self.keyword("in"):
            if not self.punct("("):
                raise self.fail("'('")
            values = [self.literal()]
            while self.punct(","):
                values.append(self.literal())
            if not self.punct(")"):
                raise self.fail("',' or ')'")
            return Compare(field, "notin" if negated else "in", tuple(values))
        if negated:
            raise self.fail("like or in")
        if self.keyword("is"):
            negated = self.keyword("not") is not None
            if not self.keyword("null"):
                raise self.fail("null")
            return Compare(field, "notnull" if negated else "null")
        raise self.fail("an operator (= != < <= > >= like in is)")

    def order(self) -> list[tuple[Field, bool]]:
        keys = []
        while True:
            field = self.field()
            descending = self.keyword("asc", "desc") == "desc"
            keys.append((field, descending))
            if not self.punct(","):
                break
        self.done()
        return keys


def parse(text: str, what: str = "where") -> Any:
    """The tree of a filter; ValidationError naming the first bad token and its column."""
    parser = Parser(text, what)
    if parser.token.kind == "end":
        raise parser.fail("a condition")
    tree = parser.expression()
    parser.done()
    return tree


def parse_order(text: str) -> list[tuple[Field, bool]]:
    """``metrics.val_auc desc, started_at`` as (field, descending) pairs."""
    return Parser(text, "order_by").order()


# ------------------------------------------------------------------ to SQL
GoalOf = Callable[[str], str | None]


class Compiler:
    """Turns a tree into a condition on ``trainings`` (joined with its model and outer-joined version).

    ``goal_of(metric)`` says which way is better ("min"/"max"/None) for ``metrics.KEY.best``.
    """

    def __init__(self, goal_of: GoalOf, what: str = "where") -> None:
        self.goal_of, self.what = goal_of, what

    def error(self, field: Field, message: str, value: Any = None) -> ValidationError:
        return ValidationError(f"{self.what}: {message} at column {field.column}", value=value)

    def attribute(self, field: Field) -> Any:
        t, m, v = schema.TrainingRow, schema.ModelRow, schema.VersionRow
        columns: dict[str, Any] = {
            "id": t.id, "status": t.status, "model": m.name, "version": v.number, "started_at": t.started_at,
            "ended_at": t.ended_at, "duration": t.duration_s, "run_by": t.run_by, "host": t.host,
            "git_commit": t.git_commit,
        }  # fmt: skip
        return columns[field.key]

    def metric_value(self, field: Field) -> Any:
        ms = schema.MetricSummaryRow
        aggregate = field.aggregate
        if aggregate == "best":
            goal = self.goal_of(field.key)
            if goal is None:
                raise self.error(
                    field, f"which way is better for {field.key!r} is unknown; use .min or .max", field.key
                )
            aggregate = goal
        return {"last": ms.last_value, "min": ms.min_value, "max": ms.max_value}[aggregate]

    def numeric_param(self) -> Any:
        """A param's value as a number where its display text is one (8, "8", 0.1, 1e-05), else NULL."""
        p = schema.ParamRow
        return case((p.display.regexp_match(_NUMBER_TEXT), cast(p.display, Float)), else_=None)

    def typed(self, field: Field, value: Any) -> Any:
        """``value`` as the field compares it: numbers for numeric attributes, moments for times."""
        if (field.space == "attr" and field.key in _NUMERIC) or field.space == "metrics":
            if isinstance(value, str):
                raise self.error(field, f"{field.key!r} compares with numbers, got {value!r}", value)
            return value
        if field.space == "attr" and field.key in _TIMES:
            if not isinstance(value, str):
                raise self.error(field, f"{field.key!r} compares with 'YYYY-MM-DD' or an ISO time", value)
            try:
                moment = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
            except ValueError:
                raise self.error(field, f"not a date or ISO time: {value!r}", value) from None
            try:
                return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)
            except OverflowError:
                raise self.error(field, f"{value!r} is outside the calendar once in UTC", value) from None
        return value if isinstance(value, str) or field.space == "params" else str(value)

    def condition(self, column: Any, node: Compare) -> ColumnElement[bool]:
        values = [self.typed(node.field, x) for x in node.values]
        op = node.op
        if op == "like":
            return column.like(values[0])
        if op == "notlike":
            return not_(column.like(values[0]))
        if op == "in":
            return column.in_(values)
        if op == "notin":
            return column.not_in(values)
        value = values[0]
        return {
            "=": column == value, "!=": column != value, "<": column < value, "<=": column <= value,
            ">": column > value, ">=": column >= value,
        }[op]  # fmt: skip

    def compile(self, node: Any) -> ColumnElement[bool]:
        if isinstance(node, Logic):
            parts = [self.compile(p) for p in node.parts]
            if node.op == "not":
                return not_(parts[0])
            return and_(*parts) if node.op == "and" else or_(*parts)
        return self.comparison(node)

    def comparison(self, node: Compare) -> ColumnElement[bool]:
        field, op = node.field, node.op
        if field.space == "attr":
            column = self.attribute(field)
            if op in ("null", "notnull"):
                return column.is_(None) if op == "null" else column.is_not(None)
            return self.condition(column, node)
        t = schema.TrainingRow
        if field.space == "tags":
            tg = schema.ModelTagRow
            row = and_(tg.model_id == t.model_id, tg.key == field.key)
            column = tg.value
        elif field.space == "metrics":
            ms, mk = schema.MetricSummaryRow, schema.MetricKeyRow
            key_id = select(mk.id).where(mk.name == field.key).scalar_subquery()
            row = and_(ms.training_id == t.id, ms.key_id == key_id)
            column = self.metric_value(field)
        else:
            p = schema.ParamRow
            row = and_(p.training_id == t.id, p.key == field.key)
            numeric = [x for x in node.values if not isinstance(x, str)]
            if numeric and len(numeric) != len(node.values):
                raise self.error(field, "mix of numbers and strings in one comparison", node.values)
            if numeric and op in ("like", "notlike"):
                raise self.error(field, "like takes a 'pattern'", node.values)
            column = self.numeric_param() if numeric else p.display
        if op == "null":
            return not_(exists().where(row))
        if op == "notnull":
            return exists().where(row)
        return exists().where(row, self.condition(column, node))

    def order_columns(self, field: Field) -> list[Any]:
        """What ``order_by`` sorts by: an attribute, or correlated scalar subqueries of one value.

        Params sort as numbers where they are numbers, then by their text.
        """
        if field.space == "attr":
            return [self.attribute(field)]
        t = schema.TrainingRow
        if field.space == "metrics":
            ms, mk = schema.MetricSummaryRow, schema.MetricKeyRow
            key_id = select(mk.id).where(mk.name == field.key).scalar_subquery()
            return [select(self.metric_value(field)).where(ms.training_id == t.id, ms.key_id == key_id)]
        if field.space == "params":
            p = schema.ParamRow
            row = and_(p.training_id == t.id, p.key == field.key)
            return [select(self.numeric_param()).where(row), select(p.display).where(row)]
        tg = schema.ModelTagRow
        return [select(tg.value).where(tg.model_id == t.model_id, tg.key == field.key)]


def where_clause(text: str, *, goal_of: GoalOf) -> ColumnElement[bool]:
    """The SQL condition for filter ``text`` (see the module docstring); ValidationError if it does not parse."""
    if not isinstance(text, str):
        raise ValidationError(f"where must be a string, got {text!r}", value=text)
    return Compiler(goal_of).compile(parse(text))


def order_clauses(text: str, *, goal_of: GoalOf) -> list[Any]:
    """ORDER BY terms for ``text``, missing values last on every backend."""
    if not isinstance(text, str):
        raise ValidationError(f"order_by must be a string, got {text!r}", value=text)
    compiler = Compiler(goal_of, "order_by")
    out: list[Any] = []
    for field, descending in parse_order(text):
        for column in compiler.order_columns(field):
            if isinstance(column, Select):
                column = column.scalar_subquery()
            out += [column.is_(None), column.desc() if descending else column.asc()]
    return out
