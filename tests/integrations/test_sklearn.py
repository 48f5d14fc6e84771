"""TrackedEstimator: records each fit, behaves like the wrapped estimator, passes scikit-learn's checks."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")

import joblib
import numpy as np
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier, is_regressor
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import estimator_checks_generator

import modeltrail
from modeltrail import _adapter
from modeltrail import _store as store_mod
from modeltrail._adapter import ModeltrailWarning
from modeltrail.integrations.sklearn import TrackedEstimator

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "mysql+pymysql://root@127.0.0.1:1/modeltrail_nowhere"  # port 1: connection refused at once


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """warn_once remembers per process; every test starts with nothing warned yet."""
    monkeypatch.setattr(_adapter, "_warned", set())


@pytest.fixture
def churn() -> tuple[Any, Any, Any, Any]:
    pd = pytest.importorskip("pandas")
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    return frame.iloc[:220], y[:220], frame.iloc[220:], y[220:]


def ledger(url: str) -> modeltrail.Tracker:
    return modeltrail.Tracker(url)


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------- recording
def test_classifier_records_params_metrics_dataset_artifact_and_versions(
    db_url_sqlite_mysql: str, churn: tuple[Any, Any, Any, Any], tmp_path: Path
) -> None:
    X, y, X_val, y_val = churn
    rf = RandomForestClassifier(n_estimators=20, random_state=0)
    clf = TrackedEstimator(rf, model="churn-rf", uri=db_url_sqlite_mysql, validation_data=(X_val, y_val))

    assert clf.fit(X, y) is clf
    assert clf.version_ == 1
    plain = clone(rf).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X_val), plain.predict_proba(X_val))
    np.testing.assert_array_equal(clf.feature_importances_, plain.feature_importances_)

    t = ledger(db_url_sqlite_mysql)
    model = t.model("churn-rf")
    assert (model.framework, model.model_type, model.latest_version) == ("sklearn", "classifier", 1)
    record = t.get_training(clf.training_id_)
    assert record.status == "finished" and record.error is None and record.duration_s > 0
    assert [(st.name, st.position, st.status) for st in record.stages] == [
        ("train", 0, "finished"),
        ("evaluate", 1, "finished"),
    ]
    assert record.metrics["train.duration_s"].last == record.stages[0].duration_s > 0
    assert record.params["n_estimators"] == 20
    assert record.params["random_state"] == 0
    assert record.params["estimator_class"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert record.context["seeds"] == {"random_state": 0}

    proba, proba_val = clf.predict_proba(X)[:, 1], clf.predict_proba(X_val)[:, 1]
    expected = {
        "accuracy": accuracy_score(y, clf.predict(X)),
        "f1": f1_score(y, clf.predict(X)),
        "log_loss": log_loss(y, clf.predict_proba(X)),
        "roc_auc": roc_auc_score(y, proba),
        "val_accuracy": accuracy_score(y_val, clf.predict(X_val)),
        "val_f1": f1_score(y_val, clf.predict(X_val)),
        "val_log_loss": log_loss(y_val, clf.predict_proba(X_val)),
        "val_roc_auc": roc_auc_score(y_val, proba_val),
    }
    for key, value in expected.items():
        assert record.metrics[key].last == pytest.approx(value), key
    assert record.metrics["fit_time_s"].last > 0

    # the artifact: saved under ./artifacts/<model>/, named by the training, hashed in the ledger
    path = Path(record.artifact_path)
    assert path == tmp_path / "artifacts" / "churn-rf" / f"training-{record.id}.joblib"
    assert record.artifact_sha256 == sha256(record.artifact_path)
    assert record.artifact_size == path.stat().st_size
    np.testing.assert_array_equal(joblib.load(path).predict(X_val), clf.predict(X_val))

    # the dataset: digest, shape and the DataFrame's column names
    dataset = record.dataset
    assert dataset is not None
    assert dataset.name == "churn-rf-train"
    assert dataset.digest == modeltrail.Dataset.from_arrays(X, y, name="x").digest
    assert dataset.shape == [220, 6] and dataset.n_rows == 220
    assert dataset.features == [f"f{i}" for i in range(6)]

    # refit after set_params: version 2, its diff names exactly the changed param
    clf.set_params(estimator__n_estimators=30).fit(X, y)
    assert clf.version_ == 2
    versions = t.versions("churn-rf")
    assert [v.number for v in versions] == [1, 2]
    assert versions[1].parent_number == 1
    assert versions[1].param_diff == {"added": {}, "removed": {}, "changed": {"n_estimators": {"old": 20, "new": 30}}}
    assert versions[1].artifact_path != versions[0].artifact_path
    assert t.get_training(versions[1].training_id).dataset.id == dataset.id  # same data, same dataset row


def test_regressor_metrics(db_url_sqlite_mysql: str) -> None:
    X, y = make_regression(n_samples=120, n_features=5, noise=5.0, random_state=1)
    reg = TrackedEstimator(Ridge(alpha=0.5), model="ridge", uri=db_url_sqlite_mysql, dataset_name="houses")
    reg.fit(X, y)

    t = ledger(db_url_sqlite_mysql)
    assert t.model("ridge").model_type == "regressor"
    record = t.get_training(reg.training_id_)
    pred = reg.predict(X)
    assert record.metrics["r2"].last == pytest.approx(r2_score(y, pred))
    assert record.metrics["mae"].last == pytest.approx(mean_absolute_error(y, pred))
    assert record.metrics["rmse"].last == pytest.approx(np.sqrt(mean_squared_error(y, pred)))
    assert not {"accuracy", "f1", "log_loss", "roc_auc"} & set(record.metrics)
    assert record.params["alpha"] == 0.5
    assert record.dataset.name == "houses" and record.dataset.features is None
    assert reg.score(X, y) == pytest.approx(r2_score(y, pred))


def test_multiclass_f1_is_weighted(sqlite_url: str) -> None:
    X, y = load_iris(return_X_y=True)
    clf = TrackedEstimator(LogisticRegression(max_iter=500), model="iris", uri=sqlite_url).fit(X, y)
    metrics = ledger(sqlite_url).get_training(clf.training_id_).metrics
    assert metrics["f1"].last == pytest.approx(f1_score(y, clf.predict(X), average="weighted"))
    assert metrics["roc_auc"].last == pytest.approx(roc_auc_score(y, clf.predict_proba(X), multi_class="ovr"))
    assert metrics["log_loss"].last == pytest.approx(log_loss(y, clf.predict_proba(X)))


def test_transformer_and_clusterer_types(sqlite_url: str) -> None:
    X, _ = make_classification(n_samples=80, n_features=4, random_state=2)
    scaler = TrackedEstimator(StandardScaler(), model="scaler", uri=sqlite_url)
    np.testing.assert_allclose(scaler.fit_transform(X), StandardScaler().fit_transform(X))
    km = TrackedEstimator(KMeans(n_clusters=3, n_init=2, random_state=0), model="km", uri=sqlite_url)
    labels = km.fit_predict(X)
    np.testing.assert_array_equal(labels, KMeans(n_clusters=3, n_init=2, random_state=0).fit_predict(X))

    t = ledger(sqlite_url)
    assert t.model("scaler").model_type == "transformer"
    assert t.model("km").model_type == "clusterer"
    assert t.get_training(km.training_id_).metrics["inertia"].last == pytest.approx(km.inertia_)
    assert [v.number for v in t.versions("scaler")] == [1]


# ------------------------------------------------------- composition / nesting
def test_pipeline_containing_tracked_estimator(db_url_sqlite_mysql: str) -> None:
    X, y = make_classification(n_samples=150, n_features=5, random_state=3)
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("clf", TrackedEstimator(LogisticRegression(), model="pipe-clf", uri=db_url_sqlite_mysql)),
        ]
    )
    pipe.fit(X, y)
    plain = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    np.testing.assert_allclose(pipe.predict_proba(X), plain.predict_proba(X))
    assert pipe.score(X, y) == pytest.approx(plain.score(X, y))

    t = ledger(db_url_sqlite_mysql)
    (record,) = t.trainings()
    assert record.model == "pipe-clf" and record.version == 1
    assert record.dataset.shape == [150, 5]  # what the step saw: the scaled matrix
    assert "accuracy" in record.metrics


def test_tracked_pipeline_records_once_even_with_a_tracked_step(db_url_sqlite_mysql: str) -> None:
    X, y = make_classification(n_samples=150, n_features=5, random_state=3)
    inner = TrackedEstimator(LogisticRegression(C=0.5), model="inner", uri=db_url_sqlite_mysql)
    outer = TrackedEstimator(make_pipeline(StandardScaler(), inner), model="outer", uri=db_url_sqlite_mysql)
    outer.fit(X, y)

    t = ledger(db_url_sqlite_mysql)
    (record,) = t.trainings()
    assert record.model == "outer"
    assert record.params["trackedestimator__estimator__C"] == 0.5
    assert "StandardScaler" in record.params["steps"][0][1]  # nested estimators are stored readably
    assert [m.name for m in t.models()] == ["outer"]
    assert outer.estimator_[-1].training_id_ is None  # the nested fit recorded nothing


def test_nested_uri_password_never_reaches_the_ledger(sqlite_url: str) -> None:
    X, y = make_classification(n_samples=80, n_features=4, random_state=3)
    inner = TrackedEstimator(LogisticRegression(), uri="mysql+pymysql://bob:s3cret@127.0.0.1:1/x")
    assert "s3cret" not in repr(inner)
    outer = TrackedEstimator(make_pipeline(StandardScaler(), inner), model="masked", uri=sqlite_url).fit(X, y)
    record = ledger(sqlite_url).get_training(outer.training_id_)
    assert record.params["trackedestimator__uri"] == "mysql+pymysql://bob:***@127.0.0.1:1/x"
    assert "s3cret" not in repr(record.params)


def test_grid_search_records_one_training(db_url_sqlite_mysql: str) -> None:
    X, y = make_classification(n_samples=200, n_features=6, random_state=4)
    grid = {"n_estimators": [5, 15], "max_depth": [2, None]}
    search = TrackedEstimator(
        GridSearchCV(RandomForestClassifier(random_state=0), grid, cv=3), model="rf-search", uri=db_url_sqlite_mysql
    )
    search.fit(X, y)

    t = ledger(db_url_sqlite_mysql)
    (record,) = t.trainings()
    assert record.status == "finished" and record.version == 1
    best = search.best_params_  # fitted attributes of the search are reachable through the wrapper
    assert {k: record.params[f"best.{k}"] for k in best} == best
    assert record.params["estimator_class"].endswith("GridSearchCV")
    assert record.params["estimator__random_state"] == 0
    assert record.metrics["cv_best_score"].last == pytest.approx(search.best_score_)
    history = t.metric_history(record.id, "cv_mean_test_score")
    assert [p.step for p in history] == [0, 1, 2, 3]
    np.testing.assert_allclose([p.value for p in history], search.cv_results_["mean_test_score"])
    refit = joblib.load(record.artifact_path)
    assert isinstance(refit, RandomForestClassifier)
    assert {k: refit.get_params()[k] for k in best} == best
    assert record.artifact_sha256 == sha256(record.artifact_path)


def test_search_over_tracked_estimators_records_once(sqlite_url: str) -> None:
    X, y = make_classification(n_samples=120, n_features=4, random_state=5)
    inner = TrackedEstimator(LogisticRegression(), model="inner", uri=sqlite_url)
    outer = TrackedEstimator(GridSearchCV(inner, {"estimator__C": [0.1, 1.0]}, cv=2), model="outer", uri=sqlite_url)
    outer.fit(X, y)
    (record,) = ledger(sqlite_url).trainings()
    assert record.model == "outer"
    assert record.params["best.estimator__C"] in (0.1, 1.0)


def test_fold_fits_are_not_recorded_by_default(sqlite_url: str) -> None:
    X, y = make_classification(n_samples=120, n_features=4, random_state=5)
    tracked = TrackedEstimator(LogisticRegression(), model="folds", uri=sqlite_url)
    scores = cross_val_score(tracked, X, y, cv=3, n_jobs=2)  # fold fits in worker processes, too
    np.testing.assert_allclose(scores, cross_val_score(LogisticRegression(), X, y, cv=3))
    assert ledger(sqlite_url).trainings() == []

    search = GridSearchCV(tracked, {"estimator__C": [0.1, 1.0]}, cv=2).fit(X, y)
    (record,) = ledger(sqlite_url).trainings()  # only the refit of the best candidate
    assert record.params["C"] == search.best_params_["estimator__C"]
    assert search.best_estimator_.version_ == 1


def test_log_every_fit_records_each_fold(sqlite_url: str) -> None:
    X, y = make_classification(n_samples=120, n_features=4, random_state=5)
    inner = TrackedEstimator(LogisticRegression(), model="per-fold", uri=sqlite_url, log_every_fit=True)
    outer = TrackedEstimator(GridSearchCV(inner, {"estimator__C": [0.1, 1.0]}, cv=2), model="outer", uri=sqlite_url)
    outer.fit(X, y)
    t = ledger(sqlite_url)
    assert len(t.trainings("outer")) == 1
    assert len(t.trainings("per-fold")) == 2 * 2 + 1  # every fold of every candidate, and the refit
    assert t.model("per-fold").latest_version == 5


def test_fit_inside_an_active_training_logs_into_it(db_url_sqlite_mysql: str) -> None:
    X, y = make_classification(n_samples=100, n_features=4, random_state=6)
    t = ledger(db_url_sqlite_mysql)
    with t.training("manual", params={"C": 2.0, "note": "mine"}) as run:
        clf = TrackedEstimator(LogisticRegression(C=2.0, max_iter=300), model="ignored", uri=db_url_sqlite_mysql)
        clf.fit(X, y)
        clf.fit(X, y)  # a second fit: its metrics extend the history, its params do not overwrite
        assert clf.training_id_ == run.id and clf.version_ is None
    (record,) = t.trainings()
    assert record.model == "manual" and record.version == 1
    assert record.params["C"] == 2.0 and record.params["max_iter"] == 300 and record.params["note"] == "mine"
    assert record.metrics["accuracy"].count == 2
    assert record.artifact_sha256 == sha256(record.artifact_path)
    assert record.dataset is not None and record.dataset.name == "manual-train"
    with pytest.raises(modeltrail.NotFoundError):
        t.model("ignored")

    with t.training("manual") as run:
        TrackedEstimator(LogisticRegression(), model="own", uri=db_url_sqlite_mysql, log_every_fit=True).fit(X, y)
    assert len(t.trainings("own")) == 1 and len(t.trainings("manual")) == 2


def test_given_tracker_is_recorded_into_and_clones_and_pickles_as_its_url(
    db_url_sqlite_mysql: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = make_classification(n_samples=60, n_features=4, random_state=1)
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    monkeypatch.setenv("MODELTRAIL_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")  # the default: stays untouched
    clf = TrackedEstimator(LogisticRegression(), model="given", tracker=tracker).fit(X, y)
    assert clf.tracker is tracker and clf.version_ == 1
    assert [r.id for r in tracker.trainings("given")] == [clf.training_id_]
    for copy in (clone(clf), pickle.loads(pickle.dumps(clf))):
        assert copy.tracker.uri == tracker.uri
        copy.fit(X, y)
    assert [v.number for v in tracker.versions("given")] == [1, 2, 3]
    assert not (tmp_path / "elsewhere.db").exists()


# ------------------------------------------------------------ estimator API
def test_clone_and_pickle_round_trip(db_url_sqlite_mysql: str) -> None:
    X, y = make_classification(n_samples=120, n_features=5, random_state=7)
    clf = TrackedEstimator(RandomForestClassifier(n_estimators=10, random_state=0), model="pk", uri=db_url_sqlite_mysql)
    twin = clone(clf)
    assert twin.get_params()["uri"] == db_url_sqlite_mysql and twin.estimator is not clf.estimator
    assert vars(twin).keys() == clf.get_params(deep=False).keys()  # nothing but the constructor params

    clf.fit(X, y)
    blob = pickle.dumps(clf)
    assert b"sqlalchemy" not in blob and b"modeltrail._tracker" not in blob
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert (back.training_id_, back.version_) == (clf.training_id_, 1)

    back.fit(X, y)  # the unpickled copy reconnects from its URL
    assert back.version_ == 2
    clone(back).fit(X, y)
    assert ledger(db_url_sqlite_mysql).model("pk").latest_version == 3


def test_delegation_and_tags(sqlite_url: str) -> None:
    clf = TrackedEstimator(LogisticRegression(max_iter=1000), uri=sqlite_url)
    reg = TrackedEstimator(Ridge(), uri=sqlite_url)
    scaler = TrackedEstimator(StandardScaler(), uri=sqlite_url)
    assert is_classifier(clf) and not is_regressor(clf) and is_regressor(reg)
    assert hasattr(clf, "predict_proba") and hasattr(clf, "decision_function")
    assert not hasattr(reg, "predict_proba") and not hasattr(reg, "transform")
    assert hasattr(scaler, "transform") and hasattr(scaler, "inverse_transform") and not hasattr(scaler, "predict")
    assert not hasattr(clf, "classes_") and not hasattr(clf, "n_features_in_")
    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((1, 3)))

    X, y = load_iris(return_X_y=True, as_frame=True)
    clf.fit(X, y)
    assert clf.training_id_ is not None
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.n_features_in_ == 4
    assert list(clf.feature_names_in_) == list(X.columns)
    assert not hasattr(clf, "no_such_attribute_")
    assert ledger(sqlite_url).model("LogisticRegression").model_type == "classifier"  # default name: the class

    scaler.set_output(transform="pandas")
    assert list(scaler.fit_transform(X).columns) == list(X.columns)
    assert list(scaler.get_feature_names_out()) == list(X.columns)


def test_metadata_routing(sqlite_url: str) -> None:
    X, y = make_classification(n_samples=100, n_features=4, random_state=8)
    weights = np.linspace(0.1, 2.0, len(y))
    with config_context(enable_metadata_routing=True):
        inner = LogisticRegression().set_fit_request(sample_weight=True)
        scaler = StandardScaler().set_fit_request(sample_weight=False)
        pipe = make_pipeline(scaler, TrackedEstimator(inner, model="routed", uri=sqlite_url))
        pipe.fit(X, y, sample_weight=weights)
    plain = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y, logisticregression__sample_weight=weights)
    np.testing.assert_allclose(pipe.predict_proba(X), plain.predict_proba(X))
    assert len(ledger(sqlite_url).trainings("routed")) == 1


# ------------------------------------------------------------------ failures
class Boom(RuntimeError):
    pass


class Exploding(ClassifierMixin, BaseEstimator):
    raised: list[BaseException] = []

    def __init__(self, fuse: int = 1) -> None:
        self.fuse = fuse

    def fit(self, X: Any, y: Any) -> Exploding:
        error = Boom(f"bad data after {self.fuse} rows")
        Exploding.raised.append(error)
        raise error


def test_failing_fit_propagates_and_is_recorded_failed(db_url_sqlite_mysql: str) -> None:
    X, y = make_classification(n_samples=50, n_features=5, random_state=9)
    clf = TrackedEstimator(Exploding(), model="boom", uri=db_url_sqlite_mysql)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModeltrailWarning)  # recording the failure itself must work
        with pytest.raises(Boom) as excinfo:
            clf.fit(X, y)
    assert excinfo.value is Exploding.raised[-1]  # the very exception, not a wrapper
    assert not hasattr(clf, "estimator_")
    assert modeltrail.active_training() is None

    t = ledger(db_url_sqlite_mysql)
    (record,) = t.trainings("boom")
    assert record.status == "failed" and record.version is None
    assert record.error == "stage 'train' failed: Boom: bad data after 1 rows"
    assert [(st.name, st.status, st.error) for st in record.stages] == [
        ("train", "failed", "Boom: bad data after 1 rows")
    ]
    assert record.artifact_path is None and record.params["fuse"] == 1
    assert t.versions("boom") == []


@pytest.mark.parametrize("uri", [UNREACHABLE, "not a database url"])
def test_unreachable_database_warns_once_and_fits(uri: str, tmp_path: Path) -> None:
    X, y = make_classification(n_samples=60, n_features=5, random_state=10)
    clf = TrackedEstimator(LogisticRegression(), model="offline", uri=uri)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert clf.fit(X, y) is clf
        clf.fit(X, y)
    ours = [str(w.message) for w in caught if str(w.message).startswith("modeltrail")]
    assert len(ours) == 1, ours  # once, not once per fit
    assert clf.training_id_ is None and clf.version_ is None
    np.testing.assert_array_equal(clf.predict(X), LogisticRegression().fit(X, y).predict(X))
    if uri == UNREACHABLE:
        # the core keeps the training in its local spool (replayed later); the model file is already saved
        assert "unreachable" in ours[0]
        assert (tmp_path / "artifacts" / "offline" / f"training-{clf.training_uuid_}.joblib").exists()
    else:
        assert "sklearn: start training" in ours[0] and "not a database url" in ours[0]
        assert clf.training_uuid_ is None and not (tmp_path / "artifacts").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "entries wait in the spool": said above already
        store_mod.close_all()


def test_invalid_validation_data_is_a_user_error(sqlite_url: str) -> None:
    X, y = make_classification(n_samples=40, n_features=5, random_state=11)
    with pytest.raises(ValueError, match="validation_data"):
        TrackedEstimator(LogisticRegression(), uri=sqlite_url, validation_data=X).fit(X, y)


# ------------------------------------------------------- scikit-learn's checks
_CHECKED = [
    TrackedEstimator(LogisticRegression(), model="checks-classifier"),
    TrackedEstimator(Ridge(), model="checks-regressor"),
    TrackedEstimator(StandardScaler(), model="checks-transformer"),
    # a meta-estimator's checks cannot seed the wrapped estimator (they set a top-level
    # ``random_state`` only), so a stochastic one is given its seed here
    TrackedEstimator(KMeans(n_clusters=2, n_init=2, random_state=0), model="checks-clusterer"),
]


def _check_name(check: Any) -> str:
    return str(getattr(check, "func", check).__name__)


# scikit-learn's array-API checks need optional array libraries (array_api_strict, cupy...) that
# are not installed; they would only ever skip, so they are left out rather than reported as skips.
_CHECKS = [
    pytest.param(estimator, check, id=f"{estimator!r}-{_check_name(check)}")
    for candidate in _CHECKED
    for estimator, check in estimator_checks_generator(candidate, legacy=True)
    if not _check_name(check).startswith("check_array_api")
]


@pytest.mark.parametrize(("estimator", "check"), _CHECKS)
def test_sklearn_estimator_checks(estimator: TrackedEstimator, check: Any, sqlite_url: str) -> None:
    estimator.set_params(uri=sqlite_url)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModeltrailWarning)  # every fit the checks make is recorded cleanly
        check(estimator)


# ------------------------------------------------------------------- extras
def test_example_script(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    env = {**os.environ, "MODELTRAIL_URI": db_url_sqlite_mysql}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sklearn_churn.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "churn-rf-tracked v1" in done.stdout and "churn-rf-tracked v2" in done.stdout

    t = ledger(db_url_sqlite_mysql)
    model = t.model("churn-rf-tracked")
    assert (model.framework, model.model_type, model.latest_version) == ("sklearn", "classifier", 2)
    first, second = t.trainings("churn-rf-tracked")
    assert first.status == second.status == "finished"
    assert (first.params["max_depth"], second.params["max_depth"]) == (4, 8)
    assert t.versions("churn-rf-tracked")[1].param_diff["changed"] == {"max_depth": {"old": 4, "new": 8}}
    for record in (first, second):
        assert {"accuracy", "val_accuracy", "val_roc_auc", "val_f1", "val_log_loss"} <= set(record.metrics)
        assert Path(record.artifact_path).parent == tmp_path / "artifacts" / "churn-rf-tracked"
        assert record.artifact_sha256 == sha256(record.artifact_path)
        assert record.dataset.n_rows == 600
    assert first.dataset.digest == second.dataset.digest


def test_importing_modeltrail_does_not_import_sklearn() -> None:
    code = "import sys, modeltrail; modeltrail.Tracker; modeltrail.Training; assert 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
