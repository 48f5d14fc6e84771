"""An ordinary training script with no modeltrail in it.

    modeltrail run examples/plain_script.py --depth 6

records its fit anyway: params, metrics, dataset, artifact, version. The scaler fitted first is
preprocessing, not a model: it is recorded in the forest's training (params ``preprocessing.StandardScaler.*``
and context ``preprocessing``), so the ledger holds one model, ``RandomForestClassifier`` (or ``--model``'s name).
"""

from __future__ import annotations

import argparse

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--depth", type=int, default=4)
args = parser.parse_args()

X, y = make_classification(n_samples=300, n_features=6, random_state=2)
X = StandardScaler().fit_transform(X)
model = RandomForestClassifier(n_estimators=30, max_depth=args.depth, random_state=2).fit(X, y)
print(f"trained a forest of depth {args.depth}: training accuracy {model.score(X, y):.3f}")
