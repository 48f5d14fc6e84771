"""What a user of the scikit-learn wrapper sees: warnings at their own line, a repr without the validation arrays."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression

from modeltrail import _adapter
from modeltrail._adapter import ModeltrailWarning
from modeltrail._training import Training
from modeltrail.integrations.sklearn import TrackedEstimator


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_adapter, "_warned", set())


def test_adapter_warning_points_at_the_users_fit_line(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Training, metrics: Any, step: int | None = None) -> None:
        raise RuntimeError("metrics store broken")

    monkeypatch.setattr(Training, "log_metrics", broken)
    X = np.random.default_rng(0).random((40, 3))
    y = (X[:, 0] > 0.5).astype(int)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TrackedEstimator(LogisticRegression(), model="m", uri=sqlite_url).fit(X, y)  # the line warned about
    (warning,) = [w for w in caught if issubclass(w.category, ModeltrailWarning)]
    assert "sklearn: metrics failed" in str(warning.message)
    assert warning.filename == __file__, warning.filename  # not contextlib.py, not sklearn.py
    source = Path(__file__).read_text().splitlines()[warning.lineno - 1]
    assert "# the line warned about" in source


def test_repr_shows_validation_data_by_type_and_shape() -> None:
    X = np.zeros((500, 5))
    y = np.arange(500)
    text = repr(TrackedEstimator(LogisticRegression(C=2.0), model="m", validation_data=(X, y)))
    assert text == (
        "TrackedEstimator(estimator=LogisticRegression(C=2.0), model='m', "
        "validation_data=(numpy.ndarray(shape=500x5, dtype=float64), numpy.ndarray(shape=500, dtype=int64)))"
    )
    assert repr(TrackedEstimator(LogisticRegression(), model="m")) == (
        "TrackedEstimator(estimator=LogisticRegression(), model='m')"
    )
