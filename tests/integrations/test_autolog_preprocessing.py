"""Autolog and ``modeltrail run``: preprocessing fits belong to the training of the model that follows them."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import modeltrail
from modeltrail import _adapter

pytestmark = pytest.mark.slow


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=120, n_features=5, random_state=0)


@pytest.fixture(autouse=True)
def _no_autolog_left_behind():
    yield
    modeltrail.disable_autolog()
    assert not _adapter.has_preprocessing()


def preprocessing_params(params: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in params.items() if k.startswith("preprocessing.")}


def test_scaler_and_pca_fits_go_to_the_next_models_training(db_url_sqlite_mysql: str, data) -> None:
    X, y = data
    modeltrail.enable_autolog(db_url_sqlite_mysql)
    scaled = StandardScaler(with_std=False).fit(X).transform(X)
    reduced = PCA(n_components=3, random_state=0).fit_transform(scaled)  # PCA's fit_transform does not call fit
    LogisticRegression().fit(reduced, y)
    modeltrail.disable_autolog()

    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    assert [m.name for m in tracker.models()] == ["LogisticRegression"]  # no model named StandardScaler or PCA
    (record,) = tracker.trainings("LogisticRegression")
    assert record.version == 1 and record.params["C"] == 1.0
    pre = preprocessing_params(record.params)
    assert pre["preprocessing.StandardScaler.with_std"] is False and pre["preprocessing.PCA.n_components"] == 3
    steps = record.context["preprocessing"]
    assert [(s["name"], s["class"], s["n_rows"], s["n_features"]) for s in steps] == [
        ("StandardScaler", "sklearn.preprocessing._data.StandardScaler", 120, 5),
        ("PCA", "sklearn.decomposition._pca.PCA", 120, 5),
    ]
    assert all(s["fit_time_s"] >= 0 for s in steps)
    assert record.context["model_class"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_two_scalers_of_one_class_and_a_changed_scaler_shows_in_the_param_diff(sqlite_url: str, data) -> None:
    X, y = data
    modeltrail.enable_autolog(sqlite_url, model="clf")
    for with_mean in (True, False):
        StandardScaler().fit(X)
        StandardScaler(with_mean=with_mean).fit(X)
        LogisticRegression().fit(X, y)
    modeltrail.disable_autolog()
    tracker = modeltrail.Tracker(sqlite_url)
    _first, second = tracker.versions("clf")
    assert [m.name for m in tracker.models()] == ["clf"]
    assert second.param_diff["changed"] == {"preprocessing.StandardScaler_2.with_mean": {"old": True, "new": False}}
    assert [s["name"] for s in tracker.trainings("clf")[0].context["preprocessing"]] == [
        "StandardScaler", "StandardScaler_2",
    ]  # fmt: skip


def test_pipeline_steps_and_transformer_pipelines(sqlite_url: str, data) -> None:
    X, y = data
    modeltrail.enable_autolog(sqlite_url)
    prep = make_pipeline(MinMaxScaler(), PCA(n_components=2)).fit(X)  # a pipeline of transformers: preprocessing
    make_pipeline(StandardScaler(), LogisticRegression()).fit(prep.transform(X), y)  # steps inside: its own params
    modeltrail.disable_autolog()
    tracker = modeltrail.Tracker(sqlite_url)
    (record,) = tracker.trainings("Pipeline")
    assert record.params["standardscaler__with_mean"] is True  # the pipeline's own step, as before
    assert record.params["preprocessing.Pipeline.pca__n_components"] == 2
    assert [s["class"] for s in record.context["preprocessing"]] == ["sklearn.pipeline.Pipeline"]


def test_inside_a_training_block_preprocessing_is_recorded_there(sqlite_url: str, data) -> None:
    X, y = data
    tracker = modeltrail.Tracker(sqlite_url)
    modeltrail.enable_autolog(tracker=tracker)
    with tracker.training("mine") as run:
        Xs = StandardScaler().fit_transform(X)
        LogisticRegression().fit(Xs, y)
    modeltrail.disable_autolog()
    assert [m.name for m in tracker.models()] == ["mine"]
    (record,) = tracker.trainings("mine")
    assert record.id == run.id and record.params["preprocessing.StandardScaler.with_mean"] is True
    assert [s["name"] for s in record.context["preprocessing"]] == ["StandardScaler"]


def test_autolog_scores_honour_a_positional_sample_weight(sqlite_url: str, data) -> None:
    X, y = data
    w = np.where(y == 1, 5.0, 0.2)
    modeltrail.enable_autolog(sqlite_url)
    clf = LogisticRegression(C=0.01).fit(X, y, w)  # sample_weight by position
    modeltrail.disable_autolog()
    (record,) = modeltrail.Tracker(sqlite_url).trainings("LogisticRegression")
    assert record.metrics["accuracy"].last == pytest.approx(accuracy_score(y, clf.predict(X), sample_weight=w))


def _run(args: list[str], url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELTRAIL_URI": url}
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


SCALER_THEN_NETWORK = """
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler
    X, y = make_classification(n_samples=64, n_features=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer="adam", loss="binary_crossentropy")
    net.fit(X, y, epochs=2, verbose=0)
"""


@pytest.mark.parametrize("model", ["net", None])
def test_run_script_scaler_then_network_is_one_version(
    db_url_sqlite_mysql: str, tmp_path: Path, model: str | None
) -> None:
    script = tmp_path / "train_net.py"
    script.write_text(textwrap.dedent(SCALER_THEN_NETWORK))
    flags = ["--model", model] if model else []
    done = _run([sys.executable, "-m", "modeltrail.cli", "run", *flags, str(script)], db_url_sqlite_mysql, tmp_path)
    assert done.returncode == 0, done.stderr
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    name = model or "Sequential"
    (m,) = tracker.models()
    assert (m.name, m.framework, m.model_type, m.latest_version) == (name, "keras", "classifier", 1)
    (record,) = tracker.trainings(name)
    assert record.params["preprocessing.StandardScaler.with_mean"] is True and record.metrics["loss"].count == 2


def test_run_script_fitting_only_transformers_records_one_training_at_exit(
    db_url_sqlite_mysql: str, tmp_path: Path
) -> None:
    script = tmp_path / "prepare_features.py"
    script.write_text(
        "from sklearn.preprocessing import StandardScaler, MinMaxScaler\n"
        "import numpy as np\n"
        "X = np.arange(40.0).reshape(10, 4)\n"
        "StandardScaler().fit(X)\n"
        "MinMaxScaler(feature_range=(-1, 1)).fit(X)\n"
    )
    done = _run([sys.executable, "-m", "modeltrail.cli", "run", str(script)], db_url_sqlite_mysql, tmp_path)
    assert done.returncode == 0, done.stderr
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    (m,) = tracker.models()
    assert (m.name, m.framework, m.model_type, m.latest_version) == ("prepare_features", "sklearn", "transformer", 1)
    (record,) = tracker.trainings("prepare_features")
    assert record.params["preprocessing.MinMaxScaler.feature_range"] == [-1, 1]
    assert [s["name"] for s in record.context["preprocessing"]] == ["StandardScaler", "MinMaxScaler"]


def test_enable_autolog_without_disable_records_leftover_preprocessing_at_exit(sqlite_url: str, tmp_path: Path) -> None:
    script = tmp_path / "scale.py"
    script.write_text(
        "import modeltrail, numpy as np\n"
        "modeltrail.enable_autolog(model='scaling')\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "StandardScaler().fit(np.arange(12.0).reshape(4, 3))\n"
    )
    done = _run([sys.executable, str(script)], sqlite_url, tmp_path)
    assert done.returncode == 0, done.stderr
    (record,) = modeltrail.Tracker(sqlite_url).trainings("scaling")
    assert record.status == "finished" and record.params["preprocessing.StandardScaler.with_std"] is True


def test_run_script_that_raises_shows_the_scripts_traceback_and_records_the_failure(
    sqlite_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "bad_fit.py"
    script.write_text(
        "import numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "LogisticRegression().fit(np.zeros((4, 2)), [0, 0, 0, 0])\n"
    )
    done = _run([sys.executable, "-m", "modeltrail.cli", "run", str(script)], sqlite_url, tmp_path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):" and "bad_fit.py" in lines[1]  # not runpy, not the CLI
    assert lines[-1].startswith("ValueError: This solver needs samples of at least 2 classes")
    (record,) = modeltrail.Tracker(sqlite_url).trainings("LogisticRegression")
    assert record.status == "failed" and "at least 2 classes" in (record.error or "")
