"""How values read on a page: numbers, deltas, durations, times, params, and chart data.

Pages show NaN and infinities as such; chart data and ``data-sort`` keys carry them as
``null`` / empty so the browser's JSON parser and the table sorter never meet them.
The command line formats numbers and times with :func:`num` and :func:`when` too: one copy.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .._values import display

#: What a missing value reads as (an en dash), and the minus and infinity signs.
MISSING, MINUS, INFINITY = "\u2013", "\u2212", "\u221e"


def num(value: Any, digits: int = 6, *, plain: bool = False) -> str:
    """A metric value for reading: ``digits`` significant digits, NaN and infinities spelled out.

    ``plain``: as Python writes floats (``nan``, ``inf``, ``-inf``), for a terminal, instead of
    the typographic signs; the command line and the pages share this one formatter.
    """
    if value is None:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if plain or math.isfinite(value):
        return f"{value:.{digits}g}"
    if math.isnan(value):
        return "NaN"
    return INFINITY if value > 0 else MINUS + INFINITY


def signed(value: Any, digits: int = 4) -> str:
    """A delta with its sign, so a gain and a loss read apart at a glance."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return "+" + num(value, digits)
    return num(value, digits).replace("-", MINUS)


def verdict(delta: Any, mode: str) -> str:
    """``better``, ``worse`` or ``same`` for a metric delta, given which direction is best."""
    if not isinstance(delta, (int, float)) or not math.isfinite(delta) or delta == 0:
        return "same"
    return "better" if (delta > 0) == (mode == "max") else "worse"


def sortkey(value: Any) -> str:
    """A ``data-sort`` key: numbers as plain decimals, missing and non-finite values empty (sorted last)."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def when(value: dt.datetime | None) -> str:
    """A UTC timestamp to the second."""
    if value is None:
        return MISSING
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """Seconds as people say them: 0.42 s, 3.1 s, 2 min 05 s, 1 h 04 min."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def size(n: int | None) -> str:
    if n is None:
        return MISSING
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def param(value: Any) -> str:
    """A param value as stored for display (strings bare, everything else as JSON)."""
    return display(value)


def finite(value: Any) -> Any:
    """Chart data: non-finite floats become None (JSON ``null``), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def pretty(value: Any) -> str:
    """JSON for a ``<pre>`` block (audit snapshots, contexts)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def short(commit: str | None, n: int = 10) -> str:
    return commit[:n] if commit else MISSING


def urlpart(value: Any) -> str:
    """A path segment or query value, with every reserved character escaped."""
    return quote(str(value), safe="")


FILTERS: dict[str, Callable[..., Any]] = {
    "num": num,
    "signed": signed,
    "verdict": verdict,
    "sortkey": sortkey,
    "when": when,
    "duration": duration,
    "size": size,
    "param": param,
    "finite": finite,
    "pretty": pretty,
    "short": short,
    "urlpart": urlpart,
}
