"""LightGBM's native ``lightgbm.train`` on scikit-learn's diabetes data, recorded by modeltrail.

Trains twice (two numbers of leaves) with early stopping on a validation set: versions 1 and 2, each with every
iteration's ``training-l2``/``valid-l2``..., the best iteration, the feature importances and the booster as
LightGBM's text model. Runs on the embedded SQLite default (./modeltrail.db) unless MODELTRAIL_URI points
elsewhere:
    MODELTRAIL_URI=mysql+pymysql://user:pw@host/db python examples/lightgbm_native.py
"""

from __future__ import annotations

import lightgbm as lgb
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

import modeltrail
from modeltrail.integrations.lightgbm import ModeltrailCallback

MODEL = "diabetes-lgbm"


def main() -> None:
    data = load_diabetes()
    X_train, X_val, y_train, y_val = train_test_split(data.data, data.target, test_size=0.25, random_state=7)
    train = lgb.Dataset(X_train, y_train, feature_name=list(data.feature_names))
    valid = lgb.Dataset(X_val, y_val, reference=train)
    for leaves in (4, 15):
        params = {"objective": "regression", "metric": ["l2", "l1"], "num_leaves": leaves, "learning_rate": 0.05,
                  "verbose": -1, "seed": 7}  # fmt: skip
        callback = ModeltrailCallback(MODEL)  # the ledger: MODELTRAIL_URI, else ./modeltrail.db
        booster = lgb.train(
            params, train, num_boost_round=500, valid_sets=[train, valid], valid_names=["training", "valid"],
            callbacks=[callback, lgb.early_stopping(20, verbose=False)],
        )  # fmt: skip
        assert callback.version is not None
        print(
            f"num_leaves={leaves}: training {callback.training_id} -> version {callback.version.number}, "
            f"best iteration {booster.best_iteration}"
        )

    tracker = modeltrail.Tracker()
    latest = tracker.versions(MODEL)[-1]
    run = tracker.get_training(latest.training_id)
    print(f"version {latest.number} changed: {latest.param_diff['changed']}")
    print(
        f"  best iteration {run.context['best_iteration']}, best valid-l2 {run.context['best_score']['valid-l2']:.1f}"
    )
    top = list(run.context["feature_importance"]["gain"].items())[:3]
    print("  most gain: " + ", ".join(f"{name} {gain:.0f}" for name, gain in top))
    curve = tracker.metric_history(MODEL, "valid-l2")
    print(f"  valid-l2: iteration 0 {curve[0].value:.1f} -> iteration {curve[-1].step} {curve[-1].value:.1f}")
    print(f"  model file: {latest.artifact_path}")
    best = tracker.best_version(MODEL, metric="valid-l2")
    assert best is not None
    print(f"best version by valid-l2: {best.version} ({best.value:.1f})")
    tracker.close()


if __name__ == "__main__":
    main()
