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


def _figure(width: float = 9.0, height: float = 5.0) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError('plots need matplotlib: pip install "modeltrail[plot]"') from e
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _finite(value: float | None) -> float:
    """Non-finite values become gaps in a line rather than breaking the axis scale."""
    return value if value is not None and math.isfinite(value) else math.nan


def _save(figure: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    try:
        figure.savefig(out)
    except ValueError as e:  # unknown format from the file extension
        raise ValidationError(f"cannot write a plot to {os.fspath(path)!r}: {e}", value=os.fspath(path)) from e
    except OSError as e:
        raise ValidationError(f"cannot write a plot to {os.fspath(path)!r}: {e.strerror}", value=os.fspath(path)) from e
    return out


def plot_curves(
    points: Sequence[CurvePoint], path: str | os.PathLike[str], *, metric: str, title: str | None = None
) -> Path:
    """One line per version: ``metric`` against step."""
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
    for i, number in enumerate(numbers):
        steps, values = by_version[number]
        color = cmap(i / max(len(numbers) - 1, 1))
        ax.plot(steps, values, label=f"v{number}", color=color, linewidth=1.2)
    ax.set_xlabel("step")
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
    return _save(figure, path)


def plot_across_versions(
    rows: Sequence[VersionMetric], path: str | os.PathLike[str], *, metric: str, title: str | None = None
) -> Path:
    """Final and best value of ``metric`` per version; versions serving somewhere now are marked and labelled."""
    if not rows:
        raise NotFoundError(f"no version logged metric {metric!r}", value=metric)
    versions = [r.version for r in rows]
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot(versions, [_finite(r.last) for r in rows], marker="o", markersize=3, label="final")
    ax.plot(versions, [_finite(r.best) for r in rows], marker="^", markersize=3, label=f"best ({rows[0].mode})")
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
    ax.set_ylabel(metric)
    ax.set_title(title or f"{rows[0].model}: {metric} across versions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(figure, path)
