"""The two-minute tour: train a small scikit-learn model twice and read back both versions.

Runs on the embedded SQLite default (./modeltrail.db) unless MODELTRAIL_URI points elsewhere:
    MODELTRAIL_URI=mysql+pymysql://user:pw@host/db python examples/demo.py
"""

from __future__ import annotations

import os
import time

import joblib
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split

import modeltrail

MODEL = "churn-rf"


def train(tracker: modeltrail.Tracker, *, n_estimators: int, max_depth: int) -> modeltrail.Training:
    X, y = make_classification(n_samples=600, n_features=12, n_informative=6, random_state=7)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=7)
    params = {"n_estimators": n_estimators, "max_depth": max_depth, "random_state": 7}
    dataset = modeltrail.Dataset.from_arrays(X_train, y_train, name="churn-synthetic")
    with tracker.training(
        MODEL, framework="sklearn", model_type="classifier", params=params, dataset=dataset, seeds={"random_state": 7}
    ) as run:
        model = RandomForestClassifier(**params).fit(X_train, y_train)
        # One point per tree count shows a learning curve in the metric history.
        for step, n in enumerate(range(10, n_estimators + 1, 10)):
            partial = RandomForestClassifier(**{**params, "n_estimators": n}).fit(X_train, y_train)
            run.log_metric("val_auc", roc_auc_score(y_val, partial.predict_proba(X_val)[:, 1]), step=step)
        predictions = model.predict(X_val)
        run.log_metrics({"val_accuracy": accuracy_score(y_val, predictions), "val_f1": f1_score(y_val, predictions)})
        os.makedirs("artifacts", exist_ok=True)
        path = f"artifacts/{MODEL}-{int(time.time() * 1000)}.joblib"
        joblib.dump(model, path)
        run.log_artifact(path)
    return run


def main() -> None:
    tracker = modeltrail.Tracker()
    print(f"ledger: {tracker}")
    first = train(tracker, n_estimators=40, max_depth=4)
    second = train(tracker, n_estimators=80, max_depth=8)
    for run in (first, second):
        record = tracker.get_training(run.id)
        version = run.version
        assert version is not None
        print(f"\n{MODEL} v{version.number}  (training {record.id}, {record.duration_s:.2f}s, {record.status})")
        print(f"  params:   {record.params}")
        for key, summary in sorted(record.metrics.items()):
            print(f"  {key:<13} last={summary.last:.4f} (step {summary.last_step})  best={summary.max:.4f}")
        print(f"  artifact: {record.artifact_path} sha256={record.artifact_sha256[:12]}...")
        print(f"  changes vs parent v{version.parent_number}: {version.param_diff}")
    history = tracker.metric_history(MODEL, "val_auc", version=second.version.number if second.version else None)
    print(f"\nval_auc history of the latest version: {[round(p.value, 3) for p in history]}")


if __name__ == "__main__":
    main()
