"""The two-minute tour: train a model twice, compare the versions, deploy, roll back, and what to try next.

Runs on the embedded SQLite default (./modeltrail.db) unless MODELTRAIL_URI points elsewhere:
    MODELTRAIL_URI=mysql+pymysql://user:pw@host/db python examples/demo.py
Run it again and it adds two more versions (3 and 4, ...): the ledger keeps everything.
"""

from __future__ import annotations

import os
import time
from typing import Any

import joblib
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split

import modeltrail

MODEL = "churn-rf"
ENVIRONMENT = "staging"
METRICS = ("val_auc", "val_accuracy", "val_f1")


def data() -> list[Any]:
    """The same synthetic churn data every time: train and validation splits."""
    X, y = make_classification(n_samples=600, n_features=12, n_informative=6, random_state=7)
    return train_test_split(X, y, test_size=0.25, random_state=7)  # type: ignore[no-any-return]


def train(tracker: modeltrail.Tracker, *, n_estimators: int, max_depth: int) -> modeltrail.Training:
    X_train, X_val, y_train, y_val = data()
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
        run.log_artifact(path, name="model")  # stored in the registry's artifact store, content-addressed
    assert run.version is not None
    print(f"  trained {MODEL} version {run.version.number}: n_estimators={n_estimators}, max_depth={max_depth}")
    return run


def columns(rows: list[tuple[Any, ...]]) -> str:
    """Rows of cells (the first is the header) as aligned text."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def versions_table(tracker: modeltrail.Tracker, runs: list[modeltrail.Training]) -> str:
    rows: list[tuple[Any, ...]] = [("version", "n_estimators", "max_depth", *METRICS, "seconds")]
    for run in runs:
        record = tracker.get_training(run.id)
        finals = [f"{record.metrics[key].last:.3f}" for key in METRICS]
        number = run.version.number if run.version else "-"
        rows.append(
            (number, record.params["n_estimators"], record.params["max_depth"], *finals, f"{record.duration_s:.2f}")
        )
    return columns(rows)


def in_words(comparison: modeltrail.Comparison) -> list[str]:
    """What changed between two versions, as a person would say it."""
    diff = comparison.params
    params = [f"{key} {change['old']} → {change['new']}" for key, change in sorted(diff["changed"].items())]
    params += [f"{key} added ({value})" for key, value in sorted(diff["added"].items())]
    params += [f"{key} removed" for key in sorted(diff["removed"])]
    metrics = []
    for m in comparison.metrics:
        better = m.last_delta > 0 if m.mode == "max" else m.last_delta < 0
        verdict = "same" if m.last_delta == 0 else "better" if better else "worse"
        metrics.append(f"{m.key} {m.last_a:.3f} → {m.last_b:.3f} ({verdict})")
    return [f"  params:  {', '.join(params) or 'no changes'}", f"  metrics: {', '.join(metrics)}"]


def main() -> None:
    tracker = modeltrail.Tracker()
    print(f"modeltrail demo, the ledger: {tracker!r}")
    print(f"\n1. Train {MODEL} twice, the second time with more and deeper trees:")
    first = train(tracker, n_estimators=40, max_depth=4)
    second = train(tracker, n_estimators=80, max_depth=8)
    assert first.version is not None and second.version is not None
    a, b = first.version.number, second.version.number

    print(f"\n2. The two versions (final values on the validation set):\n{versions_table(tracker, [first, second])}")
    print(f"\n3. Version {b} against version {a}:")
    print("\n".join(in_words(tracker.compare(MODEL, a, b))))

    print(f"\n4. Deploy to {ENVIRONMENT}, then roll back:")
    start = tracker.deploy(MODEL, a, ENVIRONMENT, reason="first release")
    print(f"  deployed version {a} to {ENVIRONMENT}")
    tracker.deploy(MODEL, b, ENVIRONMENT, reason="better val_auc")
    print(f"  deployed version {b} to {ENVIRONMENT} (replaces version {a})")
    back = tracker.rollback(MODEL, ENVIRONMENT, reason="demo: latency regression")
    print(f"  rolled back: {ENVIRONMENT} serves version {back.version} again")

    print(f"\n5. The {ENVIRONMENT} deployment history (this run's entries, oldest first):")
    history = [d for d in tracker.deployments(MODEL, environment=ENVIRONMENT) if d.id >= start.id]
    rows: list[tuple[Any, ...]] = [("version", "action", "status", "reason")]
    rows += [(d.version, d.action, d.status, d.reason or "-") for d in history]
    print(columns(rows))

    print(f"\n6. Load what {ENVIRONMENT} serves now, from the registry (sha256 checked before it is unpickled):")
    served = tracker.download_model(MODEL, environment=ENVIRONMENT)
    model = tracker.load_model(MODEL, environment=ENVIRONMENT)
    X_val, y_val = data()[1], data()[3]
    print(
        f"  version {served.version}: {type(model).__name__}(n_estimators={model.n_estimators}, "
        f"max_depth={model.max_depth}), sha256 {served.artifact.sha256[:12]}"
    )
    print(f"  accuracy on the validation rows: {accuracy_score(y_val, model.predict(X_val)):.3f}")
    tracker.close()

    print("\nTry next (the command is in .venv: run `. .venv/bin/activate` first, or type .venv/bin/modeltrail):")
    for command, what in (
        (f"modeltrail show {MODEL}", "its versions, trainings, artifacts and where each serves"),
        ("modeltrail ui", "the dashboard: open http://127.0.0.1:8765"),
        (f"modeltrail leaderboard {MODEL} --metric val_auc", "the versions ranked by val_auc"),
        (f"modeltrail serve {MODEL} --env {ENVIRONMENT}", f"what {ENVIRONMENT} serves, over HTTP on port 8080"),
    ):
        print(f"  {command:<49}  # {what}")


if __name__ == "__main__":
    main()
