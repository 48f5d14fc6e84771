"""The Keras 3 callback, on the torch backend: what a fit leaves in the ledger, read back through the Tracker."""

from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import os
import pickle
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["KERAS_BACKEND"] = "torch"  # before keras is first imported; TensorFlow is not installed
keras: Any = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("keras was imported with another backend before this module", allow_module_level=True)

import numpy as np  # noqa: E402

import modeltrail  # noqa: E402
from modeltrail import _adapter  # noqa: E402
from modeltrail._errors import StorageError  # noqa: E402
from modeltrail.integrations.keras import INTERRUPTED, ModeltrailCallback  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 3


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """modeltrail warns once per hook and process; each test sees its own first warning."""
    monkeypatch.setattr(_adapter, "_warned", set())


def data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 50, size=(n, 10))
    y = (x[:, :5].sum(axis=1) > x[:, 5:].sum(axis=1)).astype("float32").reshape(-1, 1)
    return x, y


Layer: Any = keras.layers.Layer
Callback: Any = keras.callbacks.Callback


class Boom(Layer):
    """A user's layer that fails on the second training batch (not during Keras's symbolic build)."""

    def __init__(self, after: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.after, self.calls = after, 0

    def call(self, x: Any, training: bool | None = None) -> Any:
        if training:
            self.calls += 1
            if self.calls > self.after:
                raise ValueError("boom in a user layer")
        return x


def build(lr: float | Any = 1e-3, *, extra: list[Any] | None = None) -> Any:
    model = keras.Sequential(
        [
            keras.layers.Input((10,), dtype="int32"),
            keras.layers.Embedding(50, 4),
            keras.layers.LSTM(4),
            *(extra or []),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="senti",
    )
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def history(tracker: modeltrail.Tracker, training_id: int, key: str) -> list[tuple[int, float]]:
    return [(p.step, p.value) for p in tracker.metric_history(training_id, key)]


# ------------------------------------------------------------------ happy path
def test_fit_records_params_metrics_dataset_and_artifact(db_url_sqlite_mysql: str) -> None:
    x, y = data()
    model = build()
    cb = ModeltrailCallback(model="sentiment-lstm", uri=db_url_sqlite_mysql)
    fitted = model.fit(x, y, epochs=EPOCHS, batch_size=16, validation_split=0.25, callbacks=[cb], verbose=0)

    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    (run,) = tracker.trainings("sentiment-lstm")
    assert run.status == "finished" and run.version == 1 and run.id == cb.training_id
    assert cb.version is not None and cb.version.number == 1
    assert run.duration_s is not None and run.duration_s > 0
    p = run.params
    assert (p["epochs"], p["batch_size"], p["validation_split"], p["shuffle"]) == (EPOCHS, 16, 0.25, True)
    assert (p["steps"], p["steps_per_epoch"], p["initial_epoch"]) == (3, None, 0)  # 48 training rows / 16
    assert (p["class_weight"], p["sample_weight"], p["validation"]) == (False, False, True)
    assert p["optimizer.learning_rate"] == 0.001 and p["optimizer.class"] == "Adam" and p["optimizer.beta_1"] == 0.9
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert p["num_params"] == model.count_params() == trainable + p["num_params.non_trainable"]
    assert p["num_params.trainable"] == trainable and p["num_params.non_trainable"] == 8  # BatchNorm moving stats
    assert (p["model.class"], p["model.name"], p["loss"], p["metrics"]) == (
        "Sequential", "senti", "binary_crossentropy", ["accuracy"],
    )  # fmt: skip
    assert p["callbacks"] == [] and p["keras.backend"] == "torch"
    assert "optimizer.name" not in p
    # one model_type vocabulary: binary_crossentropy says classifier; the class is in the context
    assert tracker.model("sentiment-lstm").model_type == "classifier"
    assert run.context["model_class"] == "keras.src.models.sequential.Sequential"
    assert run.dataset is not None and run.dataset.n_rows == 48 and run.dataset.name == "sentiment-lstm-train"

    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        points = history(tracker, run.id, key)
        assert [s for s, _ in points] == list(range(EPOCHS)), key
        assert [v for _, v in points] == pytest.approx(fitted.history[key], rel=1e-6), key
    assert history(tracker, run.id, "lr") == [(e, 0.001) for e in range(EPOCHS)]
    assert not [k for k in run.metrics if k.startswith("eval_")]

    path = Path(run.artifact_path or "")
    assert path == (Path.cwd() / "artifacts" / "sentiment-lstm" / f"sentiment-lstm-{run.id}.keras")
    assert run.artifact_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), rtol=1e-5)


def test_model_type_from_losses_then_softmax_outputs() -> None:
    from modeltrail.integrations.keras import model_type

    def model(loss: Any, activation: str = "linear", outputs: int = 1) -> Any:
        inputs = keras.layers.Input((4,))
        heads = [keras.layers.Dense(2, activation=activation, name=f"out{i}")(inputs) for i in range(outputs)]
        built = keras.Model(inputs, heads if outputs > 1 else heads[0])
        if loss is not None:
            built.compile(optimizer="sgd", loss=loss)
        return built

    assert model_type(model("mse")) == "regressor"
    assert model_type(model(keras.losses.Huber())) == "regressor"
    assert model_type(model("sparse_categorical_crossentropy")) == "classifier"
    assert model_type(model(["mse", "mae"], outputs=2)) == "regressor"
    assert model_type(model(["mse", "binary_crossentropy"], outputs=2)) is None  # two kinds: not guessed
    assert model_type(model(None, activation="softmax")) == "classifier"  # no loss yet: the softmax head says
    assert model_type(model(None, activation="sigmoid")) is None  # a sigmoid may regress a ratio
    assert model_type(model(lambda y, p: (y - p) ** 2)) is None  # a custom loss says nothing


def test_new_learning_rate_gives_version_2_with_param_diff(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    x, y = data()
    for lr in (1e-3, 1e-2):
        cb = ModeltrailCallback(model="sentiment-lstm", uri=db_url_sqlite_mysql, artifact_dir=tmp_path / "models")
        build(lr).fit(x, y, epochs=2, validation_split=0.25, callbacks=[cb], verbose=0)

    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    v1, v2 = tracker.versions("sentiment-lstm")
    assert (v1.number, v2.number, v2.parent_number) == (1, 2, 1)
    assert v2.param_diff["changed"] == {"optimizer.learning_rate": {"old": 0.001, "new": 0.01}}
    assert v2.param_diff["added"] == {} and v2.param_diff["removed"] == {}
    assert v2.artifact_path == str(tmp_path / "models" / f"sentiment-lstm-{v2.training_id}.keras")
    assert history(tracker, v2.training_id, "lr") == [(0, 0.01), (1, 0.01)]


def test_learning_rate_schedule_is_logged_as_config_and_per_epoch_lr(sqlite_url: str) -> None:
    x, y = data()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5, staircase=True)
    cb = ModeltrailCallback(model="scheduled", uri=sqlite_url, save_model=False)
    build(schedule).fit(x, y, epochs=EPOCHS, batch_size=32, callbacks=[cb], verbose=0)

    run = modeltrail.Tracker(sqlite_url).get_training(cb.training_id)
    p = run.params
    assert p["optimizer.learning_rate.class_name"] == "ExponentialDecay"
    assert p["optimizer.learning_rate.initial_learning_rate"] == 0.1
    assert (p["optimizer.learning_rate.decay_steps"], p["optimizer.learning_rate.staircase"]) == (2, True)
    # Two batches an epoch, halved every two steps: the rate each epoch starts with.
    lrs = [v for _, v in history(modeltrail.Tracker(sqlite_url), run.id, "lr")]
    assert lrs == pytest.approx([0.1, 0.05, 0.025])
    assert run.artifact_path is None and run.status == "finished" and p["validation"] is False


# ------------------------------------------------------- validation / evaluate
def test_validation_is_not_double_counted_and_evaluate_needs_an_open_training(sqlite_url: str) -> None:
    x, y = data()
    tracker = modeltrail.Tracker(sqlite_url)
    model = build()
    cb = ModeltrailCallback(model="plain", uri=sqlite_url, save_model=False)
    model.fit(x, y, epochs=EPOCHS, validation_data=(x[:16], y[:16]), callbacks=[cb], verbose=0)
    model.evaluate(x, y, callbacks=[cb], verbose=0)  # the fit's training is already a version: ignored

    (plain,) = tracker.trainings("plain")
    assert plain.metrics["val_loss"].count == EPOCHS and plain.metrics["loss"].count == EPOCHS
    assert sorted(plain.metrics) == ["accuracy", "loss", "lr", "train.duration_s", "val_accuracy", "val_loss"]
    assert [(st.name, st.status) for st in plain.stages] == [("train", "finished")]

    with ModeltrailCallback(model="scoped", uri=sqlite_url, save_model=False) as scoped:
        model = build()
        model.fit(x, y, epochs=EPOCHS, validation_split=0.25, callbacks=[scoped], verbose=0)
        assert tracker.trainings("scoped")[0].status == "running"  # stays open for evaluate
        result = model.evaluate(x, y, callbacks=[scoped], verbose=0, return_dict=True)
    (run,) = tracker.trainings("scoped")
    assert run.status == "finished" and run.version == 1 and scoped.version is not None
    assert history(tracker, run.id, "eval_loss") == [(0, pytest.approx(result["loss"]))]
    assert run.metrics["eval_accuracy"].count == 1
    assert run.metrics["val_loss"].count == EPOCHS and run.metrics["val_accuracy"].count == EPOCHS


# ----------------------------------------------------------------- failures
def test_failing_fit_in_with_block_is_failed_without_version(db_url_sqlite_mysql: str) -> None:
    x, y = data()
    model = build(extra=[Boom(after=5)])  # 3 batches of 16 an epoch: fails in the second epoch
    with (
        pytest.raises(ValueError, match="boom in a user layer"),
        ModeltrailCallback(model="broken", uri=db_url_sqlite_mysql) as cb,
    ):
        model.fit(x, y, epochs=EPOCHS, batch_size=16, validation_split=0.25, callbacks=[cb], verbose=0)

    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    (run,) = tracker.trainings("broken")
    assert run.status == "failed" and run.error is not None
    assert run.error.startswith("stage 'train' failed: ValueError: ")  # Keras adds call arguments
    assert "boom in a user layer" in run.error
    assert [(st.name, st.status) for st in run.stages] == [("train", "failed")]
    assert run.stages[0].error is not None and "boom in a user layer" in run.stages[0].error
    assert run.version is None and list(tracker.versions("broken")) == [] and cb.version is None
    assert run.artifact_path is None and not Path("artifacts").exists()
    assert history(tracker, run.id, "val_loss") == [(0, pytest.approx(run.metrics["val_loss"].last))]


def test_keyboard_interrupt_in_with_block_is_failed_and_propagates(sqlite_url: str) -> None:
    class Interrupt(Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            raise KeyboardInterrupt

    x, y = data()
    with pytest.raises(KeyboardInterrupt), ModeltrailCallback(model="interrupted", uri=sqlite_url) as cb:
        build().fit(x, y, epochs=EPOCHS, callbacks=[cb, Interrupt()], verbose=0)
    (run,) = modeltrail.Tracker(sqlite_url).trainings("interrupted")
    assert run.status == "failed" and run.error is not None
    assert run.error.startswith("stage 'train' failed: KeyboardInterrupt")
    assert run.params["callbacks"] == ["Interrupt"]
    assert run.metrics["loss"].count == 1  # ours ran before the interrupting callback


def test_plain_callback_records_a_failed_fit_at_its_next_fit(sqlite_url: str) -> None:
    x, y = data()
    cb = ModeltrailCallback(model="retried", uri=sqlite_url, save_model=False)
    with pytest.raises(ValueError, match="boom"):
        build(extra=[Boom()]).fit(x, y, epochs=2, callbacks=[cb], verbose=0)
    tracker = modeltrail.Tracker(sqlite_url)
    assert tracker.trainings("retried")[0].status == "running"  # Keras called no hook on the way out

    build().fit(x, y, epochs=2, callbacks=[cb], verbose=0)
    first, second = sorted(tracker.trainings("retried"), key=lambda r: r.id)
    assert (first.status, first.error, first.version) == ("failed", f"stage 'train' failed: {INTERRUPTED}", None)
    assert (second.status, second.version) == ("finished", 1)


def test_discarded_callback_records_the_failed_fit(sqlite_url: str) -> None:
    x, y = data()
    cb = ModeltrailCallback(model="dropped", uri=sqlite_url)
    with contextlib.suppress(ValueError):
        build(extra=[Boom()]).fit(x, y, epochs=2, callbacks=[cb], verbose=0)
    del cb
    gc.collect()
    for thread in threading.enumerate():
        if thread.name == "modeltrail-keras":
            thread.join(30)
    (run,) = modeltrail.Tracker(sqlite_url).trainings("dropped")
    assert run.status == "failed" and run.version is None
    assert run.error == f"stage 'train' failed: {INTERRUPTED}; the callback was discarded"


def test_unreachable_database_warns_once_and_fit_completes(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    cb = ModeltrailCallback(model="nowhere", uri=f"sqlite:///{tmp_path / 'not-a-dir' / 'ledger.db'}")
    x, y = data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = build().fit(x, y, epochs=EPOCHS, validation_split=0.25, callbacks=[cb], verbose=0)
        build().fit(x, y, epochs=1, callbacks=[cb], verbose=0)
    ours = [w for w in caught if issubclass(w.category, _adapter.ModeltrailWarning)]
    assert len(ours) == 1 and "starting the training" in str(ours[0].message)
    assert len(fitted.history["val_loss"]) == EPOCHS and cb.training_id is None
    assert not Path("artifacts").exists()


def test_failures_while_logging_warn_once_and_the_training_still_finishes(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(self: Any, key: str, value: float, step: int | None = None) -> None:
        raise StorageError("database went away")

    monkeypatch.setattr(modeltrail.Training, "log_metric", unavailable)
    cb = ModeltrailCallback(model="flaky", uri=sqlite_url, save_model=False)
    x, y = data()
    with pytest.warns(_adapter.ModeltrailWarning, match="logging epoch metrics") as caught:
        fitted = build().fit(x, y, epochs=EPOCHS, callbacks=[cb], verbose=0)
    ours = [str(w.message) for w in caught if issubclass(w.category, _adapter.ModeltrailWarning)]
    assert len([m for m in ours if "logging epoch metrics" in m]) == 1  # once per hook, not per epoch
    assert len(fitted.history["loss"]) == EPOCHS
    (run,) = modeltrail.Tracker(sqlite_url).trainings("flaky")
    assert (run.status, run.version, run.metrics) == ("finished", 1, {})


# --------------------------------------------------------- active training
def test_active_training_receives_the_fit_and_stays_open(db_url_sqlite_mysql: str) -> None:
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    x, y = data()
    model = build()
    with tracker.training("outer", framework="keras", params={"experiment": "a"}) as outer:
        cb = ModeltrailCallback(model="ignored-name", uri=db_url_sqlite_mysql)
        model.fit(x, y, epochs=2, validation_split=0.25, callbacks=[cb], verbose=0)
        model.evaluate(x, y, callbacks=[cb], verbose=0)
        assert outer.status == "running" and cb.training_id == outer.id and cb.version is None
    assert [m.name for m in tracker.models()] == ["outer"]
    (run,) = tracker.trainings("outer")
    assert run.status == "finished" and run.version == 1
    assert run.params["experiment"] == "a" and run.params["epochs"] == 2
    assert run.params["optimizer.learning_rate"] == 0.001
    assert run.metrics["val_loss"].count == 2 and run.metrics["eval_loss"].count == 1
    assert run.artifact_path is not None and run.artifact_path.endswith(f"outer-{run.id}.keras")


def test_failing_fit_inside_an_active_training_is_failed_by_that_block(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    x, y = data()
    with pytest.raises(ValueError, match="boom"), tracker.training("outer-broken"):
        build(extra=[Boom()]).fit(x, y, epochs=2, callbacks=[ModeltrailCallback(uri=sqlite_url)], verbose=0)
    (run,) = tracker.trainings("outer-broken")
    assert run.status == "failed" and "boom in a user layer" in (run.error or "") and run.version is None


def test_callback_given_a_tracker_records_into_that_tracker(
    db_url_sqlite_mysql: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    monkeypatch.setenv("MODELTRAIL_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")  # the default: stays untouched
    cb = ModeltrailCallback(model="given", tracker=tracker, save_model=False)
    assert cb.tracker is tracker and cb.uri == tracker.uri
    x, y = data()
    build().fit(x, y, epochs=2, callbacks=[cb], verbose=0)
    assert cb.tracker is tracker  # kept and used, not rebuilt from its URL
    (run,) = tracker.trainings("given")
    assert run.id == cb.training_id and run.status == "finished" and run.version == 1
    assert run.metrics["loss"].count == 2
    assert not Path(tmp_path / "elsewhere.db").exists()
    clone = pickle.loads(pickle.dumps(cb))  # a Tracker travels as its URL
    assert clone.uri == tracker.uri and clone.tracker is not tracker


# --------------------------------------------------------------- pickling
def test_callback_pickles_and_deep_copies_as_settings(sqlite_url: str, tmp_path: Path) -> None:
    x, y = data()
    cb = ModeltrailCallback(model="copied", uri=sqlite_url, artifact_dir=tmp_path, tags={"team": "nlp"})
    build().fit(x, y, epochs=1, callbacks=[cb], verbose=0)
    for clone in (pickle.loads(pickle.dumps(cb)), copy.deepcopy(cb)):
        settings = (clone.model_name, clone.uri, clone.artifact_dir, clone.tags)
        assert settings == ("copied", sqlite_url, str(tmp_path), {"team": "nlp"})
        assert clone.training_id is None and clone.model is None
    clone = pickle.loads(pickle.dumps(cb))
    build().fit(x, y, epochs=1, callbacks=[clone], verbose=0)
    tracker = modeltrail.Tracker(sqlite_url)
    assert [v.number for v in tracker.versions("copied")] == [1, 2]
    assert tracker.model("copied").tags == {"team": "nlp"}


# ------------------------------------------------------- fresh interpreters
CRASHING_SCRIPT = """
import numpy as np
import keras
from modeltrail.integrations.keras import ModeltrailCallback

class Boom(keras.layers.Layer):
    def call(self, x, training=None):
        if training:
            raise ValueError("boom in a user layer")
        return x

model = keras.Sequential([keras.layers.Input((4,)), Boom(), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
model.fit(np.zeros((8, 4)), np.zeros((8, 1)), epochs=2, callbacks=[ModeltrailCallback(model="crashed")])
"""
SCRIPTS = {
    "test_example_script_records_two_versions": [str(ROOT / "examples" / "keras_sentiment.py")],
    "test_uncaught_exception_is_recorded_failed_at_exit": ["-c", CRASHING_SCRIPT],
}


@pytest.fixture(scope="module", autouse=True)
def scripts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[subprocess.Popen[str], str]]]:
    """The selected script runs start with the module: their keras import (the slow part) overlaps the tests."""
    here = sys.modules[__name__]
    selected = {getattr(i, "originalname", "") for i in request.session.items if getattr(i, "module", None) is here}
    runs: dict[str, tuple[subprocess.Popen[str], str]] = {}
    for test, args in SCRIPTS.items():
        if test not in selected:
            continue
        folder = tmp_path_factory.mktemp("script")
        url = f"sqlite:///{folder / 'ledger.db'}"
        env = {**os.environ, "MODELTRAIL_URI": url, "KERAS_BACKEND": "torch"}
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=folder, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        runs[test] = (proc, url)
    yield runs
    for proc, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finished(run: tuple[subprocess.Popen[str], str]) -> tuple[int, str, str, str]:
    proc, url = run
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err, url


def test_example_script_records_two_versions(scripts: dict[str, tuple[subprocess.Popen[str], str]]) -> None:
    code, out, err, url = finished(scripts["test_example_script_records_two_versions"])
    assert code == 0, err
    tracker = modeltrail.Tracker(url)
    v1, v2 = tracker.versions("sentiment")
    assert v2.param_diff["changed"] == {"optimizer.learning_rate": {"old": 0.001, "new": 0.005}}
    for version in (v1, v2):
        run = tracker.get_training(version.training_id)
        assert run.status == "finished" and run.params["epochs"] == 3 and run.dataset is not None
        assert run.metrics["val_accuracy"].count == 3
        assert run.artifact_path is not None and Path(run.artifact_path).is_file()
    assert tracker.model("sentiment").model_type == "classifier"
    # the example learns: validation accuracy rises from the first epoch and ends well above chance
    first = [p.value for p in tracker.metric_history(v1.training_id, "val_accuracy")]
    assert first[-1] > first[0] and first[-1] > 0.8, first
    assert "version 2 changed" in out


def test_uncaught_exception_is_recorded_failed_at_exit(scripts: dict[str, tuple[subprocess.Popen[str], str]]) -> None:
    code, _, err, url = finished(scripts["test_uncaught_exception_is_recorded_failed_at_exit"])
    assert code == 1 and "boom in a user layer" in err
    (run,) = modeltrail.Tracker(url).trainings("crashed")
    assert run.status == "failed" and run.version is None
    assert run.error is not None
    assert run.error.startswith(f"stage 'train' failed: {INTERRUPTED}; the process exited after ValueError: ")
    assert "boom in a user layer" in run.error
