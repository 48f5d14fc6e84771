"""XGBoost's native ``xgboost.train`` on scikit-learn's breast-cancer data, recorded by modeltrail.

Trains twice (two tree depths) with early stopping on a validation set, so the ledger holds versions 1 and 2,
each with every round's ``train-logloss``/``validation-auc``..., the best iteration, the feature importances and
the booster as a JSON model file. Runs on the embedded SQLite default (./modeltrail.db) unless MODELTRAIL_URI
points elsewhere:
    MODELTRAIL_URI=mysql+pymysql://user:pw@host/db python examples/xgboost_native.py
"""

from __future__ import annotations

import xgboost as xgb
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import modeltrail
from modeltrail.integrations.xgboost import ModeltrailCallback

MODEL = "cancer-xgb"


def main() -> None:
    data = load_breast_cancer()
    X_train, X_val, y_train, y_val = train_test_split(data.data, data.target, test_size=0.25, random_state=7)
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    dtrain = xgb.DMatrix(X_train, y_train, feature_names=names)
    dval = xgb.DMatrix(X_val, y_val, feature_names=names)
    for depth in (2, 4):
        params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "max_depth": depth, "eta": 0.2}
        callback = ModeltrailCallback(MODEL)  # the ledger: MODELTRAIL_URI, else ./modeltrail.db
        booster = xgb.train(
            params, dtrain, num_boost_round=300, evals=[(dtrain, "train"), (dval, "validation")],
            early_stopping_rounds=10, callbacks=[callback], verbose_eval=False,
        )  # fmt: skip
        assert callback.version is not None
        print(
            f"max_depth={depth}: training {callback.training_id} -> version {callback.version.number}, "
            f"{booster.num_boosted_rounds()} rounds, best iteration {booster.best_iteration}"
        )

    tracker = modeltrail.Tracker()
    latest = tracker.versions(MODEL)[-1]
    run = tracker.get_training(latest.training_id)
    print(f"version {latest.number} changed: {latest.param_diff['changed']}")
    print(f"  best iteration {run.context['best_iteration']}, best validation-auc {run.context['best_score']:.4f}")
    top = list(run.context["feature_importance"]["gain"].items())[:3]
    print("  most gain: " + ", ".join(f"{name} {gain:.1f}" for name, gain in top))
    curve = tracker.metric_history(MODEL, "validation-logloss")
    print(f"  validation-logloss: round 0 {curve[0].value:.4f} -> round {curve[-1].step} {curve[-1].value:.4f}")
    print(f"  model file: {latest.artifact_path}")
    best = tracker.best_version(MODEL, metric="validation-auc")
    assert best is not None
    print(f"best version by validation-auc: {best.version} ({best.value:.4f})")
    tracker.close()


if __name__ == "__main__":
    main()
