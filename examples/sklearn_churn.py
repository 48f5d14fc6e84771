"""Train a churn classifier twice with TrackedEstimator and print the two versions it recorded.

Runs on the embedded SQLite default (./modeltrail.db) unless MODELTRAIL_URI points elsewhere:
    MODELTRAIL_URI=mysql+pymysql://user:pw@host/db python examples/sklearn_churn.py
The fitted models land in ./artifacts/churn-rf-tracked/.
"""

from __future__ import annotations

from typing import Any

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

import modeltrail
from modeltrail.integrations.sklearn import TrackedEstimator

MODEL = "churn-rf-tracked"
FEATURES = [
    "tenure_months", "monthly_charges", "total_charges", "support_calls",
    "late_payments", "contract_months", "logins_per_week", "discount_pct",
]  # fmt: skip


def churn_data() -> tuple[Any, Any]:
    """Synthetic customers; a DataFrame when pandas is installed, so feature names are recorded too."""
    X, y = make_classification(n_samples=800, n_features=len(FEATURES), n_informative=5, weights=[0.75], random_state=3)
    try:
        import pandas as pd
    except ModuleNotFoundError:
        return X, y
    return pd.DataFrame(X, columns=FEATURES), pd.Series(y, name="churned")


def main() -> None:
    X, y = churn_data()
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=3, stratify=y)
    clf = TrackedEstimator(
        RandomForestClassifier(n_estimators=60, max_depth=4, random_state=3),
        model=MODEL,
        validation_data=(X_val, y_val),
    )
    clf.fit(X_train, y_train)  # version N
    clf.set_params(estimator__max_depth=8).fit(X_train, y_train)  # version N+1: max_depth 4 -> 8

    tracker = modeltrail.Tracker()  # the same ledger: MODELTRAIL_URI or ./modeltrail.db
    print(f"ledger: {tracker}")
    for version in tracker.versions(MODEL)[-2:]:
        record = tracker.get_training(version.training_id)
        metrics = "  ".join(
            f"{key}={record.metrics[key].last:.3f}" for key in ("accuracy", "val_accuracy", "val_roc_auc")
        )
        print(f"{MODEL} v{version.number}  training {record.id}  {record.status}  {metrics}")
        print(f"  artifact: {record.artifact_path}")
        if version.parent_number is None:
            print("  first version")
        else:
            print(f"  changed vs v{version.parent_number}: {version.param_diff['changed']}")


if __name__ == "__main__":
    main()
