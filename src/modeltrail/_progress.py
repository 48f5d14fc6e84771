"""A tiny progress display for long commands: a bar on a terminal, nothing when piped.

Long work (imports, exports, replaying a spool, a schema upgrade) should show that it moves,
but a bar's carriage returns would litter a log file or a pipe, so the display is drawn on
stderr only when stderr is a terminal. No dependency: one line redrawn at most ten times a second.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

_WIDTH = 30
_INTERVAL = 0.1


class Progress:
    """``with Progress("importing", total=40) as bar: ... bar.advance()``; ``total=None`` shows a count only.

    ``enabled`` forces the display on or off; by default it is on when ``stream`` (stderr) is a terminal.
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        unit: str = "",
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty()) if callable(isatty) else False
        self.enabled = enabled
        self._last_draw = 0.0
        self._drawn = False

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def set_total(self, total: int | None) -> None:
        """For work whose size is learnt after it started (rows counted by a first query)."""
        self.total = total
        self._draw(force=True)

    def close(self) -> None:
        if self.enabled and self._drawn:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def line(self) -> str:
        """The text of the display (also what tests read)."""
        unit = f" {self.unit}" if self.unit else ""
        if self.total is None:
            return f"{self.label} {self.done}{unit}" if self.done else f"{self.label} ..."
        total = max(self.total, 1)
        filled = min(_WIDTH, _WIDTH * self.done // total)
        percent = min(100, 100 * self.done // total)
        return f"{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] {self.done}/{self.total}{unit} {percent:3d}%"

    def _draw(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < _INTERVAL and (self.total is None or self.done < self.total):
            return
        self._last_draw = now
        self.stream.write("\r\x1b[2K" + self.line())
        self.stream.flush()
        self._drawn = True
