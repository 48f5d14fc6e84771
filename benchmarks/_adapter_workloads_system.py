"""System-metric sampling's cost: the same scikit-learn fit inside a training, without and with the sampler.

A plugged-in workload of ``bench_adapters.py`` (see ``_adapter_workloads.py``). Variants, each a fresh process:

* ``none``: ``tracker.training(...)`` around the fit, no system metrics (its own SQLite file);
* ``modeltrail``: ``system_metrics=True`` at the default interval (10 s);
* ``modeltrail-1s``: ``system_metrics=1.0``, ten times the default rate, so that the cost per sample shows.

Target: under 1% added to the fit. The sampler works on its own thread, so the most it can add to a fit is the
CPU it takes while the fit runs: the CPU of every thread but the training one (the sampler, and the writer
storing its points) per second of the fit (``overhead_pct``, minus ``none``'s: the writer's own). A loaded machine
blurs wall-time differences far beyond 1%; this share it does not inflate (samples come per wall-clock second,
and so does the denominator). The fit is a HistGradientBoostingClassifier on the synthetic data (one thread),
long enough for a few samples at the default interval.
"""

from __future__ import annotations

import os
from typing import Any

from _adapter_workloads import HookTimer, synthetic, timed_fit

FRAMEWORKS = ("system",)
TARGET = 1.0  # % of the fit without the sampler, at most


def variants(framework: str, backends: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": "none", "backend": "-", "logs": "tracker.training() around the fit, no system metrics (SQLite)"}
    ]
    for backend in backends:
        out.append(
            {
                "name": "modeltrail",
                "backend": backend,
                "logs": "system_metrics=True: CPU, RSS, memory, disk, network (GPU via NVML) every 10 s, "
                "and once at the end",
                "target": TARGET,
            }
        )
        out.append(
            {
                "name": "modeltrail-1s",
                "backend": backend,
                "logs": "system_metrics=1.0: the same every second (10x the default rate)",
                "target": TARGET,
                "shipped": False,
            }
        )
    return out


def child(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("OMP_NUM_THREADS", str(spec.get("threads") or 1))
    from sklearn.ensemble import HistGradientBoostingClassifier

    import modeltrail

    name = spec["variant"]
    uri = spec.get("uri") or f"sqlite:///{os.path.join(spec['workdir'], 'system-none.db')}"
    option: bool | float = {"none": False, "modeltrail": True, "modeltrail-1s": 1.0}[name]
    x, y = synthetic(spec["samples"] * 2, spec["seed"])
    iterations = 40 * max(1, spec["epochs"])
    model = HistGradientBoostingClassifier(max_iter=iterations, early_stopping=False, random_state=0)
    tracker = modeltrail.Tracker(uri)
    tracker.models()  # the store is open before the clock starts, as in every variant
    timer = HookTimer()
    result: dict[str, Any] = {}
    with timed_fit(spec, result, timer), tracker.training("bench-system", system_metrics=option) as run:
        model.fit(x, y)
    points = len(tracker.metric_history(run.id, "system/cpu_percent"))
    share = 100 * result["bg_cpu_s"] / max(result["fit_s"], 1e-9)
    result.update(
        steps=iterations,
        points=points,
        points_ok=(points >= 1) if option else (points == 0),
        overhead_pct=share,
        note=f"sampler+writer CPU {result['bg_cpu_s']:.3f} s = {share:.3f}% of the fit's {result['fit_s']:.1f} s",
    )
    tracker.close()
    return result
