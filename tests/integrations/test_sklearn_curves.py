"""The per-iteration record a scikit-learn-API model keeps of its own training, recorded point by point, and
scores weighted as the fit was."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, log_loss, r2_score, roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modeltrail
from modeltrail.integrations.sklearn import TrackedEstimator

pytestmark = pytest.mark.slow


def points(url: str, training_id: int | None, key: str) -> list[tuple[int, float]]:
    assert training_id is not None
    return [(p.step, p.value) for p in modeltrail.Tracker(url).metric_history(training_id, key)]


def indexed(values: Any, sign: float = 1.0) -> list[tuple[int, float]]:
    return [(i, sign * float(v)) for i, v in enumerate(values)]


def data(n: int = 600, seed: int = 0) -> tuple[Any, Any]:
    return make_classification(n_samples=n, n_features=8, n_informative=5, random_state=seed)


def test_hist_gradient_boosting_early_stopping_curves_equal_sklearns(db_url_sqlite_mysql: str) -> None:
    X, y = data()
    hgb = HistGradientBoostingClassifier(
        max_iter=200, early_stopping=True, scoring="roc_auc", validation_fraction=0.2, n_iter_no_change=3,
        learning_rate=0.5, random_state=0,
    )  # fmt: skip
    clf = TrackedEstimator(hgb, model="hgb", uri=db_url_sqlite_mysql).fit(X, y)
    fitted = clf.estimator_
    assert 1 < fitted.n_iter_ < 200  # early stopping ended it
    assert len(fitted.train_score_) == len(fitted.validation_score_) == fitted.n_iter_ + 1
    assert points(db_url_sqlite_mysql, clf.training_id_, "train_roc_auc") == indexed(fitted.train_score_)
    assert points(db_url_sqlite_mysql, clf.training_id_, "validation_roc_auc") == indexed(fitted.validation_score_)
    record = modeltrail.Tracker(db_url_sqlite_mysql).get_training(clf.training_id_)
    assert record.metrics["n_iter"].last == fitted.n_iter_


def test_hist_gradient_boosting_loss_is_recorded_as_the_loss(sqlite_url: str) -> None:
    X, y = make_regression(n_samples=400, n_features=5, noise=5.0, random_state=0)
    hgb = HistGradientBoostingRegressor(max_iter=40, early_stopping=True, n_iter_no_change=50, random_state=0)
    reg = TrackedEstimator(hgb, model="hgb-reg", uri=sqlite_url).fit(X, y)
    fitted = reg.estimator_
    assert fitted.scoring == "loss" and len(fitted.validation_score_) == 41
    # scikit-learn keeps the negated loss (higher is better); the ledger keeps the loss under its own name
    assert points(sqlite_url, reg.training_id_, "train_loss") == indexed(fitted.train_score_, -1.0)
    assert points(sqlite_url, reg.training_id_, "validation_loss") == indexed(fitted.validation_score_, -1.0)
    assert points(sqlite_url, reg.training_id_, "validation_loss")[-1][1] > 0


def test_hist_gradient_boosting_default_scorer_named_after_the_estimators_score(sqlite_url: str) -> None:
    X, y = data(12_000)  # over 10,000 rows: early stopping is on by default, scored with accuracy
    clf = TrackedEstimator(HistGradientBoostingClassifier(max_iter=5, scoring=None), model="h", uri=sqlite_url)
    clf.fit(X, y)
    assert points(sqlite_url, clf.training_id_, "validation_accuracy") == indexed(clf.estimator_.validation_score_)


def test_gradient_boosting_and_mlp_curves(sqlite_url: str) -> None:
    X, y = data(300)
    gb = TrackedEstimator(
        GradientBoostingClassifier(n_estimators=15, subsample=0.7, random_state=0), model="gb", uri=sqlite_url
    ).fit(X, y)
    assert points(sqlite_url, gb.training_id_, "train_loss") == indexed(gb.estimator_.train_score_)
    assert points(sqlite_url, gb.training_id_, "oob_loss") == indexed(gb.estimator_.oob_scores_)

    mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, early_stopping=True, n_iter_no_change=50, random_state=0)
    wrapped = TrackedEstimator(make_pipeline(StandardScaler(), mlp), model="mlp", uri=sqlite_url)
    with pytest.warns(Warning):  # ConvergenceWarning: 30 epochs
        wrapped.fit(X, y)
    fitted = wrapped.estimator_[-1]  # a pipeline's curves are its last step's
    assert points(sqlite_url, wrapped.training_id_, "loss") == indexed(fitted.loss_curve_)
    assert points(sqlite_url, wrapped.training_id_, "validation_accuracy") == indexed(fitted.validation_scores_)


def test_lightgbm_evals_result_equal_point_by_point(db_url_sqlite_mysql: str) -> None:
    lgb = pytest.importorskip("lightgbm")
    X, y = data()
    model = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.3, verbose=-1, random_state=0)
    clf = TrackedEstimator(model, model="lgbm", uri=db_url_sqlite_mysql)
    clf.fit(
        X[:450], y[:450], eval_set=[(X[:450], y[:450]), (X[450:], y[450:])], eval_names=["train", "valid"],
        eval_metric=["auc"], callbacks=[lgb.early_stopping(5, verbose=False)],
    )  # fmt: skip
    own = clf.estimator_.evals_result_
    assert set(own) == {"train", "valid"} and set(own["valid"]) == {"auc", "binary_logloss"}
    keys = [f"{d}-{m}" for d in own for m in own[d]]
    record = modeltrail.Tracker(db_url_sqlite_mysql).get_training(clf.training_id_)
    assert {k for k in record.metrics if "-" in k} == set(keys)
    for dataset, per_metric in own.items():
        for metric, values in per_metric.items():
            assert points(db_url_sqlite_mysql, clf.training_id_, f"{dataset}-{metric}") == indexed(values)
    assert 0 < clf.estimator_.best_iteration_ < 300
    assert record.metrics["best_iteration"].last == clf.estimator_.best_iteration_
    assert modeltrail.Tracker(db_url_sqlite_mysql).model("lgbm").model_type == "classifier"


def test_xgboost_evals_result_equal_point_by_point(db_url_sqlite_mysql: str) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = data()
    model = xgb.XGBClassifier(
        n_estimators=300, learning_rate=0.3, eval_metric=["logloss", "auc"], early_stopping_rounds=5, random_state=0
    )
    clf = TrackedEstimator(model, model="xgb", uri=db_url_sqlite_mysql)
    clf.fit(X[:450], y[:450], eval_set=[(X[:450], y[:450]), (X[450:], y[450:])], verbose=False)
    own = clf.estimator_.evals_result()
    assert set(own) == {"validation_0", "validation_1"}
    for dataset, per_metric in own.items():
        for metric, values in per_metric.items():
            assert len(values) > 1
            assert points(db_url_sqlite_mysql, clf.training_id_, f"{dataset}-{metric}") == indexed(values)
    record = modeltrail.Tracker(db_url_sqlite_mysql).get_training(clf.training_id_)
    assert record.metrics["best_iteration"].last == clf.estimator_.best_iteration


def test_xgboost_without_eval_set_records_no_curve(sqlite_url: str) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = data(200)
    clf = TrackedEstimator(xgb.XGBClassifier(n_estimators=5), model="xgb", uri=sqlite_url).fit(X, y)
    record = modeltrail.Tracker(sqlite_url).get_training(clf.training_id_)
    assert "accuracy" in record.metrics and not [k for k in record.metrics if "-" in k or k == "best_iteration"]


# ------------------------------------------------------------------ weights
def test_classifier_scores_honour_fit_sample_weight(db_url_sqlite_mysql: str) -> None:
    X, y = data(300)
    rng = np.random.default_rng(1)
    w = rng.choice([0.1, 5.0], size=len(y))
    X_val, y_val, w_val = X[:100], y[:100], rng.choice([0.2, 3.0], size=100)
    clf = TrackedEstimator(
        LogisticRegression(C=0.05), model="w", uri=db_url_sqlite_mysql, validation_data=(X_val, y_val, w_val)
    ).fit(X, y, sample_weight=w)
    pred, proba = clf.predict(X), clf.predict_proba(X)[:, 1]
    m = modeltrail.Tracker(db_url_sqlite_mysql).get_training(clf.training_id_).metrics
    assert m["accuracy"].last == pytest.approx(accuracy_score(y, pred, sample_weight=w))
    assert m["accuracy"].last != pytest.approx(accuracy_score(y, pred))  # the weights matter on this data
    assert m["f1"].last == pytest.approx(f1_score(y, pred, sample_weight=w))
    assert m["log_loss"].last == pytest.approx(log_loss(y, clf.predict_proba(X), sample_weight=w))
    assert m["roc_auc"].last == pytest.approx(roc_auc_score(y, proba, sample_weight=w))
    val_pred = clf.predict(X_val)
    assert m["val_accuracy"].last == pytest.approx(accuracy_score(y_val, val_pred, sample_weight=w_val))


def test_regressor_and_pipeline_step_weights(sqlite_url: str) -> None:
    X, y = make_regression(n_samples=200, n_features=4, noise=30.0, random_state=0)
    w = np.where(np.arange(200) % 2 == 0, 0.05, 4.0)
    pipe = TrackedEstimator(make_pipeline(StandardScaler(), Ridge(alpha=50.0)), model="p", uri=sqlite_url)
    pipe.fit(X, y, ridge__sample_weight=w)
    m = modeltrail.Tracker(sqlite_url).get_training(pipe.training_id_).metrics
    assert m["r2"].last == pytest.approx(r2_score(y, pipe.predict(X), sample_weight=w))
    assert m["r2"].last != pytest.approx(r2_score(y, pipe.predict(X)))


def test_search_curves_come_from_the_best_estimator(sqlite_url: str) -> None:
    X, y = data(300)
    search = GridSearchCV(HistGradientBoostingClassifier(max_iter=10, early_stopping=True), {"max_depth": [2, 3]}, cv=2)
    wrapped = TrackedEstimator(search, model="s", uri=sqlite_url).fit(X, y)
    best = wrapped.estimator_.best_estimator_
    assert points(sqlite_url, wrapped.training_id_, "validation_loss") == indexed(best.validation_score_, -1.0)
