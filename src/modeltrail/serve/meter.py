"""Production metrics measured in memory while requests are answered, written by the background task.

A request only adds to the current :class:`Window` of the deployment it was answered by (a lock held
for a few additions); the database is never touched on the request path. The runner takes the windows
every metrics interval and writes each as one ``log_production_metrics`` call against its deployment;
a window the database did not take is put back and merged with the next, so counts are never lost
and never counted twice. Latencies beyond :data:`LATENCY_SAMPLES` per window are sampled (reservoir),
so an outage cannot grow memory without bound; counts stay exact.
"""

from __future__ import annotations

import math
import random
import threading
from collections import Counter
from typing import Any

import numpy as np

LATENCY_SAMPLES = 50_000
PREFIX = "serving."


class Window:
    """What one deployment's requests did since the last write."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.rows = 0
        self.latencies: list[float] = []
        self.timed = 0  # latencies offered, sampled or not
        self.classes: Counter[Any] = Counter()
        self.n = 0
        self.total = 0.0
        self.squares = 0.0

    def add_latency(self, seconds: float) -> None:
        self.timed += 1
        if len(self.latencies) < LATENCY_SAMPLES:
            self.latencies.append(seconds)
        else:
            slot = random.randrange(self.timed)
            if slot < LATENCY_SAMPLES:
                self.latencies[slot] = seconds

    def merge(self, other: Window) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.rows += other.rows
        for seconds in other.latencies:
            self.add_latency(seconds)
        self.classes.update(other.classes)
        self.n += other.n
        self.total += other.total
        self.squares += other.squares

    def metrics(self) -> dict[str, float]:
        """The window as production metrics (empty when no request came)."""
        if not self.requests:
            return {}
        out = {f"{PREFIX}requests": float(self.requests), f"{PREFIX}errors": float(self.errors)}
        out[f"{PREFIX}rows"] = float(self.rows)
        if self.latencies:
            p50, p95, p99 = np.percentile(np.asarray(self.latencies) * 1000.0, [50, 95, 99])
            out.update({f"{PREFIX}latency_p50_ms": p50, f"{PREFIX}latency_p95_ms": p95, f"{PREFIX}latency_p99_ms": p99})
        labelled = sum(self.classes.values())
        for label, count in sorted(self.classes.items(), key=lambda kv: str(kv[0])):
            out[f"{PREFIX}class_share.{label}"] = count / labelled
        if self.n:
            mean = self.total / self.n
            out[f"{PREFIX}prediction_mean"] = mean
            out[f"{PREFIX}prediction_std"] = math.sqrt(max(self.squares / self.n - mean * mean, 0.0))
        return {k: float(v) for k, v in out.items()}


class Meter:
    """The windows of every deployment this server answered for since the last write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[int, Window] = {}

    def _window(self, deployment_id: int) -> Window:
        window = self._windows.get(deployment_id)
        if window is None:
            window = self._windows[deployment_id] = Window()
        return window

    def answered(self, deployment_id: int, seconds: float, predictions: Any, *, classifier: bool) -> None:
        """A prediction request answered: its latency, and its predictions for the distribution."""
        rows = len(predictions)
        if classifier:
            labels = Counter(predictions.tolist() if hasattr(predictions, "tolist") else predictions)
            n, total, squares = 0, 0.0, 0.0
        else:
            values = np.asarray(predictions, dtype=float).ravel()
            labels, n = Counter(), int(values.size)
            total, squares = float(values.sum()), float(np.dot(values, values))
        with self._lock:
            window = self._window(deployment_id)
            window.requests += 1
            window.rows += rows
            window.add_latency(seconds)
            window.classes.update(labels)
            window.n += n
            window.total += total
            window.squares += squares

    def failed(self, deployment_id: int) -> None:
        """A prediction request refused or failed: counted as a request and an error."""
        with self._lock:
            window = self._window(deployment_id)
            window.requests += 1
            window.errors += 1

    def take(self) -> dict[int, Window]:
        """Every window so far, leaving empty ones behind (what the next write will hold)."""
        with self._lock:
            taken, self._windows = self._windows, {}
        return taken

    def put_back(self, windows: dict[int, Window]) -> None:
        """Windows the database did not take: merged into what came since, for the next write."""
        with self._lock:
            for deployment_id, window in windows.items():
                self._window(deployment_id).merge(window)
