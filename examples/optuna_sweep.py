"""An Optuna study tuning a scikit-learn SGD classifier on the wine data, recorded by modeltrail.

Every trial is a training of the model "wine-sweep" (its params, the validation accuracy after each epoch as
``intermediate_value`` at its step, the final accuracy as ``value``); pruned trials have status ``pruned``; a trial
becomes a version only when it is the study's best when it ends, so the latest version is the best trial.
``cb.track`` records the epochs live. Runs on the embedded SQLite default (./modeltrail.db) unless MODELTRAIL_URI
points elsewhere:
    MODELTRAIL_URI=mysql+pymysql://user:pw@host/db python examples/optuna_sweep.py
"""

from __future__ import annotations

import numpy as np
import optuna
from sklearn.datasets import load_wine
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import modeltrail
from modeltrail.integrations.optuna import ModeltrailCallback

STUDY = "wine-sweep"
EPOCHS = 12


def main() -> None:
    X, y = load_wine(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=7, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    classes = np.unique(y)

    def objective(trial: optuna.Trial) -> float:
        clf = SGDClassifier(
            alpha=trial.suggest_float("alpha", 1e-6, 1.0, log=True),
            loss=trial.suggest_categorical("loss", ["hinge", "log_loss", "modified_huber"]),
            eta0=trial.suggest_float("eta0", 1e-4, 1e-1, log=True),
            learning_rate="constant",
            random_state=7,
        )
        accuracy = 0.0
        for epoch in range(EPOCHS):
            clf.partial_fit(X_train, y_train, classes=classes)
            accuracy = float(clf.score(X_val, y_val))
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=STUDY,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=7),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    callback = ModeltrailCallback(model_type="classifier")  # model: the study's name; MODELTRAIL_URI or ./modeltrail.db
    study.optimize(callback.track(objective), n_trials=40, callbacks=[callback])

    tracker = modeltrail.Tracker()
    runs = [r for r in tracker.trainings(STUDY) if r.context.get("optuna.study") == STUDY]
    mine = {r.id for r in runs}
    by_status = {s: sum(r.status == s for r in runs) for s in ("finished", "pruned", "failed")}
    print(f"{len(study.trials)} trials: " + ", ".join(f"{n} {s}" for s, n in by_status.items()))
    print("versions (each a new best when it ended):")
    for version in tracker.versions(STUDY):
        if version.training_id not in mine:
            continue  # an earlier run of this example
        run = tracker.get_training(version.training_id)
        params = f"alpha={run.params['alpha']:.2g}, eta0={run.params['eta0']:.2g}, loss={run.params['loss']}"
        trial, value = run.context["optuna.trial"], run.metrics["value"].last
        print(f"  version {version.number}: trial {trial:>2}  value {value:.4f}  {params}")
    print(f"study.best_trial: {study.best_trial.number} with value {study.best_value:.4f}")
    leader = tracker.leaderboard(STUDY, metric="value", limit=1)[0]  # "value": maximize, declared from the study
    print(f"leaderboard by value: version {leader.version} ({leader.value:.4f})")
    print(f"try: modeltrail trainings {STUDY} --status pruned")
    tracker.close()


if __name__ == "__main__":
    main()
