"""`@modeltrail.autolog`: a plain training function becomes a recorded training.

Its arguments become params (data by type and shape), the returned dict becomes metrics, and the
scikit-learn fit inside it is captured into the same training.
"""

from __future__ import annotations

from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

import modeltrail


@modeltrail.autolog(model="churn-gbm")
def train(X, y, *, learning_rate: float = 0.1, n_estimators: int = 50) -> dict[str, float]:
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=0)
    model = GradientBoostingClassifier(learning_rate=learning_rate, n_estimators=n_estimators, random_state=0)
    model.fit(X_train, y_train)
    return {"val_auc": roc_auc_score(y_val, model.predict_proba(X_val)[:, 1])}


if __name__ == "__main__":
    X, y = make_classification(n_samples=400, n_features=8, random_state=1)
    for rate in (0.1, 0.3):
        print(f"learning_rate={rate}: {train(X, y, learning_rate=rate)}")
    for version in modeltrail.Tracker().versions("churn-gbm"):
        print(f"v{version.number}: changed {version.param_diff['changed']}")
