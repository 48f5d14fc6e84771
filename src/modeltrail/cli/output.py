"""How answers are printed: JSON for scripts, aligned text tables for people.

Numbers and times are formatted by the dashboard's formatters (``ui/format.py``), so a value reads
the same in a terminal and on a page; a missing value is ``-`` here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from ..ui.format import num, when


def to_jsonable(value: Any) -> Any:
    """Records as JSON: datetimes in ISO 8601, non-finite floats as "NaN", "Infinity", "-Infinity"."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def fmt(value: Any) -> str:
    """One cell of text: ``-`` for nothing, yes/no, six significant digits, UTC times to the second."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return num(value, plain=True)
    if isinstance(value, dt.datetime):
        return when(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(to_jsonable(value), sort_keys=True, ensure_ascii=False)
    return str(value)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Left-aligned columns separated by two spaces; cells are single lines."""
    cells = [[fmt(c).replace("\n", " ") for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 version``, ``2 versions``: a number with its noun agreeing (``plural`` where it is not ``+s``)."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def indent(text: str, levels: int = 1) -> str:
    """Every line of ``text`` indented by two spaces per level."""
    return "\n".join("  " * levels + line for line in text.splitlines())


def short(commit: str | None) -> str | None:
    """A commit as people quote it: its first ten characters."""
    return commit[:10] if commit else None


def pairs(values: dict[str, Any], *, sep: str = "=") -> str:
    """``key=value, ...`` sorted by key (``-`` when empty): params, seeds, final metrics."""
    return ", ".join(f"{k}{sep}{fmt(v)}" for k, v in sorted(values.items())) or "-"


class Output:
    """Where a command's answer goes: JSON for scripts, text for people."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, data: Any, text: Callable[[], str]) -> None:
        if self.as_json:
            print(json.dumps(to_jsonable(data), ensure_ascii=False, allow_nan=False, indent=2))
        else:
            print(text())

    def rows(
        self, rows: Sequence[Any], headers: Sequence[str], cells: Callable[[Any], Sequence[Any]], empty: str
    ) -> None:
        """``rows`` as a table (one line of ``cells(row)`` each), or ``empty`` when there are none."""
        self.emit(rows, lambda: table([cells(r) for r in rows], headers) if rows else empty)
