"""The adapter lifecycle in modeltrail._adapter, framework-free: join or own, pickling, watchdog, warn once."""

from __future__ import annotations

import gc
import pickle
import threading
import warnings
from pathlib import Path

import pytest

import modeltrail
from modeltrail import _adapter


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_adapter, "_warned", set())


def test_lifecycle_owns_a_training_it_starts_and_pickles_as_its_url(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    life = _adapter.Lifecycle("demo", tracker)
    run = life.start("m", params={"a": 1})
    assert life.tracker is tracker and life.owned and life.stage is not None and run.status == "running"
    blob = pickle.dumps(life)
    assert b"Tracker" not in blob and b"Engine" not in blob
    back = pickle.loads(blob)
    assert (back.framework, back.uri, back.training) == ("demo", tracker.uri, None)
    life.end_stage()
    assert life.end().number == 1  # type: ignore[union-attr]
    (record,) = tracker.trainings("m")
    assert record.status == "finished" and [(s.name, s.status) for s in record.stages] == [("train", "finished")]
    assert tracker.model("m").framework == "demo"


def test_lifecycle_joins_the_active_training_and_leaves_it_to_its_block(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    with tracker.training("outer", params={"lr": 0.1}) as outer:
        life = _adapter.Lifecycle("demo", sqlite_url)
        assert life.join({"lr": 0.5, "epochs": 3}) is outer and not life.owned
        assert outer.params == {"lr": 0.1, "epochs": 3}  # the first value of a key wins
        assert life.end() is None and outer.status == "running"
    assert _adapter.Lifecycle("demo").join() is None


def test_watchdog_fails_a_training_whose_owner_is_discarded(sqlite_url: str) -> None:
    class Owner:
        pass

    owner = Owner()
    life = _adapter.Lifecycle("demo", sqlite_url)
    life.start("abandoned")
    life.watch(owner, "the fit never returned", label="owner")
    del owner
    gc.collect()
    watchdogs = [t for t in threading.enumerate() if t.name == "modeltrail-demo"]
    assert all(t.join(30) is None and not t.is_alive() for t in watchdogs)
    (record,) = modeltrail.Tracker(sqlite_url).trainings("abandoned")
    assert (record.status, record.version) == ("failed", None)
    assert record.error == "stage 'train' failed: the fit never returned; the owner was discarded"


def test_guarded_failures_warn_once_and_carry_on() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            with _adapter.guarded("demo: a hook"):
                raise RuntimeError("no database")
    ours = [str(w.message) for w in caught if issubclass(w.category, _adapter.ModeltrailWarning)]
    assert ours == ["modeltrail: demo: a hook failed (RuntimeError: no database); training continues without it"]


def test_stage_block_fails_the_stage_with_the_error_and_reraises(sqlite_url: str) -> None:
    run = modeltrail.Tracker(sqlite_url).training("staged")
    with pytest.raises(ValueError), _adapter.stage_block(run, "train", "demo"):
        raise ValueError("bad")
    assert run.failed_stage == "train"
    run.finish("failed", error="ValueError: bad")


def test_safe_names_and_artifact_paths(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _adapter.safe_name("team a/cnn:v2.") == "team_a_cnn_v2"
    assert _adapter.safe_name("...") == "model"
    assert _adapter.safe_name("-x-", strip="._-", default="run", limit=100) == "x"
    monkeypatch.chdir(tmp_path)
    run = modeltrail.Tracker(sqlite_url).training("a/b")
    path = _adapter.artifact_path(run, None, "f.bin")
    assert path == Path("artifacts") / "a_b" / "f.bin" and path.parent.is_dir()
    assert _adapter.artifact_path(run, tmp_path / "out", "g") == tmp_path / "out" / "g"
    run.finish()


def test_require_names_the_extra_to_install() -> None:
    with pytest.raises(ModuleNotFoundError, match=r'pip install "modeltrail\[nothing\]"'):
        _adapter.require("modeltrail_no_such_framework", "nothing")


def test_the_core_imports_no_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, modeltrail._adapter; "
        "assert not {'numpy', 'torch', 'keras', 'sklearn', 'lightning', 'sqlalchemy'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
