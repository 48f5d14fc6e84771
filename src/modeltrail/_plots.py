"""Figures of a model's metrics: each version's curve, or final and best values across versions.

matplotlib is imported only here and only when a figure is drawn, and through its Agg
canvas directly: no pyplot, no global backend switch in the caller's process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._errors import NotFoundError, ValidationError
from ._records import CurvePoint, VersionMetric

#: Beyond this many versions a legend is unreadable: curves are coloured by version instead.
LEGEND_MAX = 12
#: Each version its own line style and marker, so curves lying on one another still read as several.
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: A marker on every point up to this many points a curve (a one-point curve is a marker, never nothing).
MARKED_POINTS = 40
#: Up to this many distinct steps or versions each gets its own tick; beyond, integer ticks spaced out.
TICKED_VALUES_MAX = 20


def _figure(width: float = 9.0, height: float = 5.0) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError('plots need matplotlib: pip install "modeltrail[plot]"', name="matplotlib") from e
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _finite(value: float | None) -> float:
    """Non-finite values become gaps in a line rather than breaking the axis scale."""
    return value if value is not None and math.isfinite(value) else math.nan


def _integer_x(ax: Any, values: Sequence[int]) -> None:
    """Ticks on whole numbers only (steps, versions), never 1.0, 1.5, 2.0: each value where there are
    few of them, else integer ticks spaced out; the axis spans the values with half a step to spare."""
    from matplotlib.ticker import FixedLocator, MaxNLocator, StrMethodFormatter

    distinct = sorted(set(values))
    if len(distinct) <= TICKED_VALUES_MAX:
        ax.xaxis.set_major_locator(FixedLocator(distinct))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:.0f}"))
    # Half a step of room, no more: the default 5% margin put a tick at version 0 (or -4).
    lo, hi = distinct[0], distinct[-1]
    margin = 1.0 if lo == hi else 0.5
    ax.set_xlim(lo - margin, hi + margin)


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    """Equal point for point, NaN gaps included."""
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def _save(figure: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    try:
        figure.savefig(out)
    except ValueError as e:  # unknown format from the file extension
        raise ValidationError(f"cannot write a plot to {os.fspath(path)!r}: {e}", value=os.fspath(path)) from e
    except OSError as e:
        raise ValidationError(f"cannot write a plot to {os.fspath(path)!r}: {e.strerror}", value=os.fspath(path)) from e
    return out


def curves_figure(points: Sequence[CurvePoint], *, metric: str, title: str | None = None) -> Any:
    """One line per version, ``metric`` against step, every point marked (a one-point curve shows).

    Versions differ in line style and marker as well as colour, and a curve identical to an earlier
    version's is drawn hollow on top of it and says so in the legend (``v2 (same as v1)``), so a
    chart never seems to hold fewer versions than it does.
    """
    if not points:
        raise NotFoundError(f"no points of metric {metric!r} to plot", value=metric)
    by_version: dict[int, tuple[list[int], list[float]]] = {}
    for p in points:
        steps, values = by_version.setdefault(p.version, ([], []))
        steps.append(p.step)
        values.append(_finite(p.value))
    figure = _figure()
    ax = figure.add_subplot()
    numbers = sorted(by_version)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    # Up to ten versions: ten distinct colours (viridis' light end is pale on white); beyond, a gradient.
    colours = colormaps["tab10"] if len(numbers) <= 10 else None
    drawn: list[int] = []
    # Styles tell versions apart through the legend; past it (a colour bar) they would only be noise.
    styled = len(numbers) <= LEGEND_MAX
    for i, number in enumerate(numbers):
        steps, values = by_version[number]
        twin = next((n for n in drawn if by_version[n][0] == steps and _same(by_version[n][1], values)), None)
        drawn.append(number)
        ax.plot(
            steps,
            values,
            label=f"v{number}" if twin is None else f"v{number} (same as v{twin})",
            color=colours(i) if colours is not None else cmap(i / max(len(numbers) - 1, 1)),
            linewidth=1.2,
            linestyle=LINESTYLES[i % len(LINESTYLES)] if styled else "-",
            marker=MARKERS[i % len(MARKERS)] if styled else "o",
            markersize=(5 if styled else 3) if twin is None else 9,
            markerfacecolor=None if twin is None else "none",
            markevery=max(1, len(steps) // MARKED_POINTS),
            alpha=0.85,
        )
    ax.set_xlabel("step")
    _integer_x(ax, [p.step for p in points])
    ax.set_ylabel(metric)
    ax.set_title(title or f"{points[0].model}: {metric} by version")
    ax.grid(alpha=0.3)
    if len(numbers) <= LEGEND_MAX:
        ax.legend(title="version", fontsize="small")
    else:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        mappable = ScalarMappable(norm=Normalize(numbers[0], numbers[-1]), cmap=cmap)
        figure.colorbar(mappable, ax=ax, label="version")
    return figure


def plot_curves(
    points: Sequence[CurvePoint], path: str | os.PathLike[str], *, metric: str, title: str | None = None
) -> Path:
    """One line per version: ``metric`` against step (:func:`curves_figure`), written to ``path``."""
    return _save(curves_figure(points, metric=metric, title=title), path)


def across_versions_figure(rows: Sequence[VersionMetric], *, metric: str, title: str | None = None) -> Any:
    """Final and best value of ``metric`` per version on whole-number version ticks; versions serving now marked.

    Where final and best are the same in every version (a metric logged once) one line says so.
    """
    if not rows:
        raise NotFoundError(f"no version logged metric {metric!r}", value=metric)
    versions = [r.version for r in rows]
    finals, bests = [_finite(r.last) for r in rows], [_finite(r.best) for r in rows]
    figure = _figure()
    ax = figure.add_subplot()
    if _same(finals, bests):
        ax.plot(versions, finals, marker="o", markersize=6, label=f"final = best ({rows[0].mode})")
    else:
        ax.plot(versions, finals, marker="o", markersize=6, label="final")
        ax.plot(
            versions, bests, marker="^", markersize=8, linestyle="--", markerfacecolor="none",
            label=f"best ({rows[0].mode})",
        )  # fmt: skip
    deployed = [r for r in rows if r.environments]
    if deployed:
        ax.scatter(
            [r.version for r in deployed],
            [_finite(r.best) for r in deployed],
            s=160,
            marker="*",
            color="crimson",
            zorder=3,
            label="deployed now",
        )
        for r in deployed:
            ax.annotate(
                ", ".join(r.environments),
                (r.version, _finite(r.best)),
                textcoords="offset points",
                xytext=(0, 9),
                ha="center",
                fontsize="small",
                color="crimson",
            )
    ax.set_xlabel("version")
    _integer_x(ax, versions)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{rows[0].model}: {metric} across versions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return figure


def plot_across_versions(
    rows: Sequence[VersionMetric], path: str | os.PathLike[str], *, metric: str, title: str | None = None
) -> Path:
    """Final and best value of ``metric`` per version (:func:`across_versions_figure`), written to ``path``."""
    return _save(across_versions_figure(rows, metric=metric, title=title), path)
