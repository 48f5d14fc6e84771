"""The Optuna callback: every trial a training equal to ``study.trials`` key by key, the best trials versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

optuna: Any = pytest.importorskip("optuna")

import modeltrail  # noqa: E402
from modeltrail import _adapter  # noqa: E402
from modeltrail._errors import ValidationError  # noqa: E402
from modeltrail.cli import main  # noqa: E402
from modeltrail.integrations.optuna import INTERMEDIATE, ModeltrailCallback  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
optuna.logging.set_verbosity(optuna.logging.ERROR)

#: The objective of every test (and of the worker processes): reports 4 steps, may be pruned, fails for n == 5.
OBJECTIVE = """
def objective(trial):
    x = trial.suggest_float("x", -10, 10)
    n = trial.suggest_int("n", 1, 5)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    trial.set_user_attr("kind_upper", kind.upper())
    for step in range(4):
        trial.report((x - 2) ** 2 + n + 1.0 / (step + 1), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    if n == 5:
        raise ValueError("n=5 is not allowed")
    return (x - 2) ** 2 + n
"""
namespace: dict[str, Any] = {"optuna": optuna}
exec(OBJECTIVE, namespace)
objective = namespace["objective"]
STATUS = {"COMPLETE": "finished", "PRUNED": "pruned", "FAIL": "failed"}


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_adapter, "_warned", set())


def make_study(name: str, storage: Any = None, **options: Any) -> Any:
    return optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=11),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        **options,
    )


def assert_trials_equal(tracker: modeltrail.Tracker, model: str, study: Any) -> None:
    """Each trial of ``study.trials`` is one training of ``model``, key by key and step by step."""
    runs = {r.context["optuna.trial"]: r for r in tracker.trainings(model)}
    trials = [t for t in study.trials if t.state.name in STATUS]
    assert sorted(runs) == [t.number for t in trials]
    for trial in trials:
        run = runs[trial.number]
        assert run.status == STATUS[trial.state.name], trial.number
        assert {k: run.params[k] for k in trial.params} == trial.params
        assert run.context["optuna.study"] == study.study_name
        steps = (
            [(p.step, p.value) for p in tracker.metric_history(run, INTERMEDIATE)] if trial.intermediate_values else []
        )
        assert steps == sorted(trial.intermediate_values.items())
        if trial.state.name == "COMPLETE":
            assert run.metrics["value"].last == trial.value and run.metrics["value"].count == 1
            assert run.context["optuna.user_attrs"] == trial.user_attrs
            assert run.context["optuna.state"] == "COMPLETE"
            assert run.context["optuna.datetime_start"] == trial.datetime_start.isoformat()
        else:
            assert "value" not in run.metrics and run.version is None
    # Versions: each complete trial that was the best when it ended, in order; the latest is the study's best.
    versions = tracker.versions(model)
    by_training = {r.id: r for r in runs.values()}
    numbers = [by_training[v.training_id].context["optuna.trial"] for v in versions]
    assert numbers[-1] == study.best_trial.number
    values = [study.trials[n].value for n in numbers]
    assert values == sorted(values, reverse=True)  # minimizing: every version improves on the one before


@pytest.mark.parametrize("live", [False, True], ids=["after-trial", "tracked"])
def test_every_trial_equals_study_trials_and_only_new_bests_are_versions(db_url_sqlite_mysql: str, live: bool) -> None:
    study = make_study("sweep")
    cb = ModeltrailCallback(uri=db_url_sqlite_mysql, model_type="regressor")
    study.optimize(cb.track(objective) if live else objective, n_trials=24, callbacks=[cb], catch=(ValueError,))
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    states = {t.state.name for t in study.trials}
    assert states == {"COMPLETE", "PRUNED", "FAIL"}  # the study exercises every ending
    assert_trials_equal(tracker, "sweep", study)
    model = tracker.model("sweep")
    assert (model.framework, model.model_type) == ("optuna", "regressor")
    # Pruned trials are found by status, the way a user searches.
    pruned = sorted(t.number for t in study.trials if t.state.name == "PRUNED")
    assert sorted(r.context["optuna.trial"] for r in tracker.trainings("sweep", status="pruned")) == pruned
    found = tracker.trainings("sweep", where="status = 'pruned'")
    assert sorted(r.context["optuna.trial"] for r in found) == pruned
    # The direction is declared, so the leaderboard needs no --mode and its best is the study's best.
    assert {g.metric: g.goal for g in tracker.metric_goals("sweep")} == {"value": "min", INTERMEDIATE: "min"}
    best = tracker.best_version("sweep", metric="value")
    assert best is not None and best.value == study.best_value
    failed = [r for r in tracker.trainings("sweep", status="failed")]
    expected = "ValueError: n=5 is not allowed" if live else "ended FAIL"
    assert failed and all(expected in (r.error or "") for r in failed)


def test_trials_in_several_processes_against_one_mariadb(mysql_url: str, tmp_path: Path) -> None:
    """Three worker processes, Optuna's RDB storage and the ledger in the same MariaDB database."""
    storage = optuna.storages.RDBStorage(mysql_url)
    make_study("shared", storage=storage)
    worker = tmp_path / "worker.py"
    worker.write_text(
        textwrap.dedent(
            """
            import sys
            import optuna
            from modeltrail.integrations.optuna import ModeltrailCallback
            optuna.logging.set_verbosity(optuna.logging.ERROR)
            """
        )
        + OBJECTIVE
        + textwrap.dedent(
            """
            url, mode = sys.argv[1], sys.argv[2]
            study = optuna.load_study(study_name="shared", storage=url)
            cb = ModeltrailCallback(uri=url)
            study.optimize(cb.track(objective) if mode == "track" else objective, n_trials=6, callbacks=[cb],
                           catch=(ValueError,))
            """
        )
    )
    workers = [
        subprocess.Popen(
            [sys.executable, str(worker), mysql_url, mode], cwd=tmp_path, stderr=subprocess.PIPE, text=True
        )
        for mode in ("plain", "track", "plain")
    ]
    for proc in workers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    study = optuna.load_study(study_name="shared", storage=storage)
    assert len(study.trials) == 18
    tracker = modeltrail.Tracker(mysql_url)
    assert_trials_equal(tracker, "shared", study)
    assert len({r.context["optuna.pid"] for r in tracker.trainings("shared")}) == 3


def test_a_tracked_trial_is_the_active_training_of_adapters_inside_it(sqlite_url: str) -> None:
    xgb = pytest.importorskip("xgboost")
    from sklearn.datasets import load_breast_cancer

    from modeltrail.integrations.xgboost import ModeltrailCallback as XGBCallback

    X, y = load_breast_cancer(return_X_y=True)
    dtrain, dval = xgb.DMatrix(X[:400], y[:400]), xgb.DMatrix(X[400:], y[400:])
    results: dict[int, dict[str, Any]] = {}

    def tune(trial: Any) -> float:
        depth = trial.suggest_int("max_depth", 2, 4)
        results[trial.number] = {}
        booster = xgb.train(
            {"objective": "binary:logistic", "max_depth": depth}, dtrain, 5, evals=[(dval, "eval")],
            evals_result=results[trial.number], callbacks=[XGBCallback()], verbose_eval=False,
        )  # fmt: skip
        return float(booster.eval(dval).split(":")[1])

    study = optuna.create_study(study_name="tuned-xgb", sampler=optuna.samplers.RandomSampler(seed=0))
    cb = ModeltrailCallback(uri=sqlite_url)
    study.optimize(cb.track(tune), n_trials=3, callbacks=[cb])
    tracker = modeltrail.Tracker(sqlite_url)
    assert [m.name for m in tracker.models()] == ["tuned-xgb"]  # the XGBoost callback joined each trial
    for run in tracker.trainings("tuned-xgb"):
        number = run.context["optuna.trial"]
        steps = [(p.step, p.value) for p in tracker.metric_history(run, "eval-logloss")]
        assert steps == list(enumerate(results[number]["eval"]["logloss"]))
        assert run.params["max_depth"] == study.trials[number].params["max_depth"]
        assert run.params["num_boost_round"] == 5
        assert run.metrics["value"].last == study.trials[number].value


def test_an_uncaught_error_in_a_tracked_trial_is_recorded_and_propagates(sqlite_url: str) -> None:
    def broken(trial: Any) -> float:
        trial.suggest_float("x", 0, 1)
        trial.report(0.5, 0)
        raise KeyError("missing column")

    study = optuna.create_study(study_name="broken")
    cb = ModeltrailCallback(uri=sqlite_url)
    with pytest.raises(KeyError, match="missing column"):
        study.optimize(cb.track(broken), n_trials=3, callbacks=[cb])
    (run,) = modeltrail.Tracker(sqlite_url).trainings("broken")
    assert (run.status, run.version, run.error) == ("failed", None, "KeyError: 'missing column'")
    assert run.params["x"] == study.trials[0].params["x"] and run.metrics[INTERMEDIATE].last == 0.5


def test_several_objectives_make_versions_of_the_pareto_front(sqlite_url: str) -> None:
    study = optuna.create_study(study_name="pareto", directions=["minimize", "maximize"])
    study.set_metric_names(["loss", "accuracy"])

    def two(trial: Any) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        return x**2, x

    cb = ModeltrailCallback(uri=sqlite_url)
    study.optimize(two, n_trials=8, callbacks=[cb])
    tracker = modeltrail.Tracker(sqlite_url)
    runs = {r.context["optuna.trial"]: r for r in tracker.trainings("pareto")}
    for trial in study.trials:
        assert (runs[trial.number].metrics["loss"].last, runs[trial.number].metrics["accuracy"].last) == tuple(
            trial.values
        )
    assert {g.metric: g.goal for g in tracker.metric_goals("pareto")} == {"loss": "min", "accuracy": "max"}
    assert {r.context["optuna.trial"] for r in runs.values() if r.version is not None} >= {
        t.number for t in study.best_trials
    }


def test_two_threads_trials_ending_together_number_their_versions_in_the_order_they_became_best(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``n_jobs`` threads: trial 0 is found best, then trial 1 ends better and is recorded while trial 0's
    finish is still on its way. The latest version must be trial 1, the best, not whichever finish came last."""
    import threading

    from modeltrail.integrations import optuna as adapter

    study = optuna.create_study(study_name="race", direction="maximize")
    first, second = study.ask(), study.ask()
    study.tell(first, 0.8)
    decided, second_done = threading.Event(), threading.Event()
    is_best = adapter._is_best

    def slow_is_best(study_: Any, trial: Any) -> bool:
        best = is_best(study_, trial)
        if trial.number == 0:  # trial 0 has its answer; hold it until trial 1 is recorded (or a while)
            decided.set()
            second_done.wait(1.0)
        return best

    monkeypatch.setattr(adapter, "_is_best", slow_is_best)
    cb = ModeltrailCallback(uri=sqlite_url)

    def record_second() -> None:
        decided.wait(60)
        study.tell(second, 0.9)
        cb(study, study.trials[1])
        second_done.set()

    thread = threading.Thread(target=record_second)
    thread.start()
    cb(study, study.trials[0])
    thread.join(60)
    tracker = modeltrail.Tracker(sqlite_url)
    versions = tracker.versions("race")
    by_trial = {r.id: r.context["optuna.trial"] for r in tracker.trainings("race")}
    assert [(v.number, by_trial[v.training_id]) for v in versions] == [(1, 0), (2, 1)]
    tracker.close()


def test_settings_are_checked_at_the_call() -> None:
    with pytest.raises(ValidationError, match="model name"):
        ModeltrailCallback("")
    with pytest.raises(ValidationError, match="tag"):
        ModeltrailCallback(tags={"": "x"})


def test_an_unusable_ledger_warns_once_and_the_study_completes(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    cb = ModeltrailCallback(uri=f"sqlite:///{tmp_path / 'not-a-dir' / 'ledger.db'}")
    study = make_study("nowhere")
    with pytest.warns(_adapter.ModeltrailWarning) as caught:
        study.optimize(cb.track(objective), n_trials=4, callbacks=[cb], catch=(ValueError,))
    ours = [str(w.message) for w in caught if issubclass(w.category, _adapter.ModeltrailWarning)]
    assert len(ours) == len(set(ours)) and len(study.trials) == 4


def test_the_core_statuses_a_tuner_needs(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``pruned`` ends a training without a version; ``make_version=False`` a finished one."""
    tracker = modeltrail.Tracker(db_url)
    with tracker.training("m") as run:
        run.log_metric("loss", 1.0)
    kept = tracker.training("m")
    assert kept.finish("finished", make_version=False) is None
    pruned = tracker.training("m")
    assert pruned.finish("pruned") is None
    refused = tracker.training("m")
    with pytest.raises(ValidationError, match="status"):
        refused.finish("aborted")
    assert refused.status == "running" and refused.finish("failed", error="refused status") is None
    assert [v.number for v in tracker.versions("m")] == [1]
    assert {r.id: (r.status, r.version) for r in tracker.trainings("m") if r.id in (kept.id, pruned.id)} == {
        kept.id: ("finished", None),
        pruned.id: ("pruned", None),
    }
    assert main(["--uri", db_url, "--json", "trainings", "m", "--status", "pruned"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["status"]) for r in listed] == [(pruned.id, "pruned")]
    assert main(["--uri", db_url, "trainings", "m", "--status", "aborted"]) == 2
    assert "pruned" in capsys.readouterr().err  # the error lists the statuses there are


def test_a_missing_optuna_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['optuna'] = None\n"
        "try:\n    import modeltrail.integrations.optuna\n"
        "except ModuleNotFoundError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == 'modeltrail.integrations.optuna needs optuna: pip install "modeltrail[optuna]"'


def test_the_example_runs_and_its_latest_version_is_the_best_trial(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    env = {**os.environ, "MODELTRAIL_URI": db_url_sqlite_mysql}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "optuna_sweep.py")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    runs = tracker.trainings("wine-sweep")
    assert len(runs) == 40 and {r.status for r in runs} == {"finished", "pruned"}
    latest = tracker.versions("wine-sweep")[-1]
    best_trial = int(done.stdout.split("study.best_trial: ")[1].split()[0])
    assert tracker.get_training(latest.training_id).context["optuna.trial"] == best_trial
    assert f"leaderboard by value: version {latest.number} " in done.stdout
