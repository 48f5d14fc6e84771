"""The registry holds the model: named artifacts in a content-addressed store, loaded back verified.

Each test reads what a user would: rows in the ledger, files in the store, the model loaded back
and its predictions, errors raised, the CLI's output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modeltrail
from modeltrail.cli import main as cli

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Downloads go to this test's folder, and no store is configured from outside."""
    monkeypatch.setenv("MODELTRAIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MODELTRAIL_ARTIFACTS", raising=False)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def ledger(db_url: str, store_dir: Path) -> Iterator[modeltrail.Tracker]:
    t = modeltrail.Tracker(db_url, artifacts=str(store_dir))
    yield t
    t.close()


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    return X, (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)


def fit_and_log(tracker: modeltrail.Tracker, C: float, path: Path, **log: Any) -> tuple[Any, int]:
    X, y = data()
    with tracker.training("churn-rf", params={"C": C}) as run:
        model = LogisticRegression(C=C).fit(X, y)
        joblib.dump(model, path)
        run.log_artifact(path, **log)
    assert run.version is not None
    return model, run.version.number


def blobs(store: Path) -> list[Path]:
    return sorted(p for p in (store / "sha256").rglob("*") if p.is_file())


# ----------------------------------------------------------------- core
def test_named_artifacts_per_training_and_the_model_is_the_one_named_model(
    ledger: modeltrail.Tracker, tmp_path: Path, store_dir: Path
) -> None:
    X, y = data()
    model_file, plot, folder = tmp_path / "churn.joblib", tmp_path / "confusion.png", tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "vocab.txt").write_text("a\nb\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "config.json").write_text("{}")
    plot.write_bytes(b"\x89PNG fake")
    with ledger.training("churn-rf") as run:
        joblib.dump(LogisticRegression().fit(X, y), model_file)
        run.log_artifact(model_file)  # the old single-argument call: the first one is the model
        run.log_artifact(plot, role="plot")  # a later plot no longer replaces it
        run.log_artifact(folder, name="tokenizer", role="preprocessing")
    rows = {a.name: a for a in ledger.artifacts("churn-rf")}
    assert list(rows) == ["model", "confusion.png", "tokenizer"]
    model = rows["model"]
    assert model.sha256 == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert model.size == model_file.stat().st_size and model.flavor == "sklearn" and model.state == "stored"
    assert rows["confusion.png"].media_type == "image/png" and rows["confusion.png"].role == "plot"
    assert rows["tokenizer"].kind == "directory" and rows["tokenizer"].files == 2 and rows["tokenizer"].size == 6
    # The training and the version keep pointing at the model, as before.
    training = ledger.get_training(run.id)
    assert training.artifact_path == str(model_file) and training.artifact_sha256 == model.sha256
    assert ledger.versions("churn-rf")[0].artifact_path == str(model_file)
    # Every file is in the store under its digest; the folder's files plus its manifest.
    stored = {p.name for p in blobs(store_dir)}
    tokenizer_files = {hashlib.sha256(b"a\nb\n").hexdigest(), hashlib.sha256(b"{}").hexdigest()}
    assert stored == {model.sha256, rows["confusion.png"].sha256, *tokenizer_files}
    assert (store_dir / "manifests" / f"{rows['tokenizer'].sha256}.json").is_file()
    assert model.location == f"{store_dir}/sha256/{model.sha256[:2]}/{model.sha256}"
    # The folder comes back whole, every file verified.
    pulled = ledger.download_model("churn-rf", artifact="tokenizer", dest=tmp_path / "out")
    assert (Path(pulled.path) / "vocab.txt").read_text() == "a\nb\n"
    assert (Path(pulled.path) / "sub" / "config.json").read_text() == "{}"


def test_a_retrain_overwriting_the_file_keeps_every_version_loadable(
    ledger: modeltrail.Tracker, tmp_path: Path, store_dir: Path
) -> None:
    path = tmp_path / "models" / "churn-rf.joblib"  # the README's path: every retrain writes it again
    path.parent.mkdir()
    first, v1 = fit_and_log(ledger, 0.01, path)
    second, v2 = fit_and_log(ledger, 10.0, path)
    X, _ = data()
    assert ledger.load_model("churn-rf", version=v1).C == 0.01
    np.testing.assert_array_equal(ledger.load_model("churn-rf", version=v1).predict_proba(X), first.predict_proba(X))
    np.testing.assert_array_equal(ledger.load_model("churn-rf").predict_proba(X), second.predict_proba(X))
    # The same bytes logged again are stored once.
    joblib.dump(second, tmp_path / "copy.joblib")
    with ledger.training("churn-rf") as run:
        run.log_artifact(tmp_path / "copy.joblib")
    assert len(blobs(store_dir)) == 2
    assert [a.sha256 for a in ledger.artifacts("churn-rf")] == [ledger.artifacts("churn-rf", version=v2)[0].sha256]


def test_load_by_environment_now_and_at_a_past_time_and_by_alias(ledger: modeltrail.Tracker, tmp_path: Path) -> None:
    import datetime as dt
    import time

    _, v1 = fit_and_log(ledger, 0.1, tmp_path / "a.joblib")
    _, v2 = fit_and_log(ledger, 5.0, tmp_path / "b.joblib")
    ledger.deploy("churn-rf", v1, "production")
    time.sleep(0.05)
    between = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.05)
    ledger.deploy("churn-rf", v2, "production")
    assert ledger.load_model("churn-rf", environment="production").C == 5.0
    assert ledger.load_model("churn-rf", environment="production", at=between).C == 0.1
    assert ledger.model_artifact("churn-rf", environment="production", at=between).version == v1
    ledger.rollback("churn-rf", "production")
    assert ledger.download_model("churn-rf", environment="production").version == v1
    alias = ledger.set_alias("churn-rf", "champion", version=v2, set_by="ana")
    assert (alias.alias, alias.version, alias.set_by) == ("champion", v2, "ana")
    assert ledger.load_model("churn-rf", alias="champion").C == 5.0
    ledger.set_alias("churn-rf", "champion", version=v1)
    assert ledger.load_model("churn-rf", alias="champion").C == 0.1
    assert ledger.delete_alias("churn-rf", "champion") == v1
    events = ledger.audit(action="version.alias*")
    assert [(e.action, (e.before or {}).get("version"), e.after.get("version")) for e in reversed(events)] == [
        ("version.alias", None, v2),
        ("version.alias", v2, v1),
        ("version.alias.delete", v1, None),
    ]


def test_tags_and_notes_after_the_fact_are_audited_and_shown(
    ledger: modeltrail.Tracker, tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    _, v1 = fit_and_log(ledger, 1.0, tmp_path / "a.joblib")
    notes = ledger.tag_version("churn-rf", v1, {"validated": "yes", "owner": "risk"})
    assert notes.tags == {"owner": "risk", "validated": "yes"}
    notes = ledger.tag_version("churn-rf", v1, {"owner": None})
    assert notes.tags == {"validated": "yes"}
    notes = ledger.describe_version("churn-rf", v1, "first model; trained on November data", updated_by="ana")
    ledger.set_alias("churn-rf", "champion", version=v1)
    assert ledger.version_notes("churn-rf", v1) == modeltrail.VersionNotes(
        "churn-rf", v1, "first model; trained on November data", {"validated": "yes"}, ["champion"]
    )
    tag_events = list(reversed(ledger.audit(action="version.tag")))
    assert [e.after["tags"] for e in tag_events] == [{"owner": "risk", "validated": "yes"}, {"owner": None}]
    assert tag_events[1].before == {"owner": "risk"}
    assert ledger.audit(action="version.describe")[0].after["description"].startswith("first model")
    assert cli(["--uri", db_url, "show", "churn-rf"]) == 0
    shown = capsys.readouterr().out
    assert "aliases: champion -> version 1" in shown
    assert "version 1: 'first model; trained on November data'; tags validated=yes" in shown
    assert "artifacts:" in shown and "model" in shown and "stored" in shown


def test_memory_store(db_url: str, tmp_path: Path) -> None:
    with modeltrail.Tracker(db_url, artifacts="memory://mt-test-store") as tracker:
        fit_and_log(tracker, 2.0, tmp_path / "m.joblib")
        (tmp_path / "m.joblib").unlink()  # only the store has it now
        assert tracker.load_model("churn-rf").C == 2.0
        assert tracker.artifacts("churn-rf")[0].location.startswith("memory://mt-test-store/sha256/")


def test_the_ledger_records_the_store_for_every_client(db_url: str, store_dir: Path, tmp_path: Path) -> None:
    with modeltrail.Tracker(db_url, artifacts=str(store_dir)) as first:
        fit_and_log(first, 3.0, tmp_path / "m.joblib")
    (tmp_path / "m.joblib").unlink()
    with modeltrail.Tracker(db_url) as other:  # no URL given: the ledger's store
        assert other.artifact_store is not None and other.artifact_store.public == str(store_dir)
        assert other.load_model("churn-rf").C == 3.0


def test_sqlite_default_store_is_a_folder_beside_the_database(tmp_path: Path) -> None:
    with modeltrail.Tracker(f"sqlite:///{tmp_path / 'ledger.db'}") as tracker:
        fit_and_log(tracker, 1.0, tmp_path / "m.joblib")
        assert tracker.artifacts("churn-rf")[0].store_url == str(tmp_path / "ledger-artifacts")
    assert len(blobs(tmp_path / "ledger-artifacts")) == 1


def test_server_ledger_without_a_store_records_the_path_and_says_how_once(tmp_path: Path) -> None:
    from tests.conftest import BACKENDS, make_db_url

    if "postgres" not in BACKENDS:
        pytest.skip("needs PostgreSQL")
    with contextlib.contextmanager(make_db_url)("postgres", tmp_path) as url, modeltrail.Tracker(url) as tracker:
        with pytest.warns(modeltrail.ModeltrailWarning, match="MODELTRAIL_ARTIFACTS") as caught:
            fit_and_log(tracker, 1.0, tmp_path / "a.joblib")
            fit_and_log(tracker, 2.0, tmp_path / "b.joblib")
        assert len([w for w in caught if "artifact store" in str(w.message)]) == 1
        row = tracker.artifacts("churn-rf")[0]
        assert (row.state, row.store_url, row.source_path) == ("local", None, str(tmp_path / "b.joblib"))
        assert tracker.load_model("churn-rf").C == 2.0  # from its path, verified
        (tmp_path / "b.joblib").write_bytes(b"changed")
        with pytest.raises(modeltrail.ArtifactIntegrityError, match=r"b\.joblib"):
            tracker.load_model("churn-rf")


# ----------------------------------------------------------------- tampering
def test_a_tampered_stored_file_is_refused_before_it_is_deserialized(
    ledger: modeltrail.Tracker, tmp_path: Path, store_dir: Path
) -> None:
    fit_and_log(ledger, 1.0, tmp_path / "m.joblib")
    sha = ledger.artifacts("churn-rf")[0].sha256
    stored = store_dir / "sha256" / sha[:2] / sha
    marker = tmp_path / "pwned"
    stored.write_bytes(_evil_pickle(marker))
    with pytest.raises(modeltrail.ArtifactIntegrityError) as caught:
        ledger.load_model("churn-rf")
    assert str(stored) in str(caught.value) and sha in str(caught.value)
    assert not marker.exists()  # the pickle was never opened
    # A damaged cache entry is fetched again, not trusted and not an error.
    stored.write_bytes((tmp_path / "m.joblib").read_bytes())
    assert ledger.load_model("churn-rf").C == 1.0
    cached = tmp_path / "cache" / "sha256" / sha[:2] / sha
    cached.write_bytes(_evil_pickle(marker))
    assert ledger.load_model("churn-rf").C == 1.0 and not marker.exists()


def _evil_pickle(marker: Path) -> bytes:
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(marker), "w"))

    return pickle.dumps(Evil())


# ----------------------------------------------------------------- bad input
def test_bad_input_is_one_clear_error_naming_the_value(ledger: modeltrail.Tracker, tmp_path: Path, db_url: str) -> None:
    with ledger.training("churn-rf") as run:
        (tmp_path / "notes.txt").write_text("x")
        run.log_artifact(tmp_path / "notes.txt", name="notes")
        with pytest.raises(modeltrail.ValidationError, match="flavor must be one of"):
            run.log_artifact(tmp_path / "notes.txt", flavor="pickle")
        with pytest.raises(modeltrail.ValidationError, match="artifact name"):
            run.log_artifact(tmp_path / "notes.txt", name=" model")
        with pytest.raises(modeltrail.ValidationError, match="/no/such/file"):
            run.log_artifact("/no/such/file", name="model")
    with pytest.raises(modeltrail.NotFoundError, match=r"no artifact named .model. \(its artifacts are notes"):
        ledger.load_model("churn-rf")
    _, v2 = fit_and_log(ledger, 1.0, tmp_path / "m.joblib")
    with pytest.raises(modeltrail.NotFoundError, match="no alias 'champion'"):
        ledger.load_model("churn-rf", alias="champion")
    with pytest.raises(modeltrail.NotFoundError, match="serves 'production'"):
        ledger.load_model("churn-rf", environment="production")
    with pytest.raises(modeltrail.NotFoundError, match="no version 9"):
        ledger.set_alias("churn-rf", "champion", version=9)
    with pytest.raises(modeltrail.ValidationError, match="one way"):
        ledger.load_model("churn-rf", version=v2, alias="x")
    with pytest.raises(modeltrail.ValidationError, match="cannot be a number"):
        ledger.set_alias("churn-rf", "3", version=v2)
    with pytest.raises(modeltrail.NotFoundError, match="no alias 'gone'"):
        ledger.delete_alias("churn-rf", "gone")
    with pytest.raises(modeltrail.ConfigurationError, match=r'pip install "modeltrail\[gcs\]"'):
        modeltrail.Tracker(db_url, artifacts="gs://bucket/models")
    with pytest.raises(modeltrail.ConfigurationError, match="unknown protocol"):
        modeltrail.Tracker(db_url, artifacts="nosuchfs://bucket/models")
    # Nothing recorded was lost: both trainings and the version are there.
    assert [a.name for a in ledger.artifacts("churn-rf", version=1)] == ["notes"]
    assert ledger.load_model("churn-rf", version=v2).C == 1.0


def test_cli_pull_artifacts_alias_and_tags(
    ledger: modeltrail.Tracker, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "churn.joblib"
    _, v1 = fit_and_log(ledger, 0.5, path)
    ledger.deploy("churn-rf", v1, "production")
    uri = ["--uri", db_url]
    assert cli([*uri, "pull", "churn-rf", "--env", "production", "-o", str(tmp_path / "pulled")]) == 0
    out = capsys.readouterr().out
    assert f"pulled churn-rf version {v1}, artifact 'model'" in out and "verified" in out
    assert joblib.load(tmp_path / "pulled" / "churn.joblib").C == 0.5
    assert cli([*uri, "alias", "set", "churn-rf", "champion", str(v1)]) == 0
    assert cli([*uri, "tag-version", "churn-rf", str(v1), "validated=yes"]) == 0
    assert cli([*uri, "describe-version", "churn-rf", str(v1), "the first"]) == 0
    capsys.readouterr()
    assert cli([*uri, "--json", "alias", "list", "churn-rf"]) == 0
    assert [(a["alias"], a["version"]) for a in json.loads(capsys.readouterr().out)] == [("champion", v1)]
    assert cli([*uri, "artifacts", "churn-rf"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "size", "sha256", "flavor", "role", "state", "location"]
    cells = lines[1].split()
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert cells[:5] == ["model", "file", str(path.stat().st_size), "B", sha[:12]]
    assert cells[5:] == ["sklearn", "-", "stored", f"{tmp_path / 'store'}/sha256/{sha[:2]}/{sha}"]
    assert cli([*uri, "pull", "churn-rf", "--alias", "nope", "-o", str(tmp_path / "x")]) == 2
    assert "no alias 'nope'" in capsys.readouterr().err
    assert cli([*uri, "pull", "churn-rf", "-o", str(tmp_path / "x")]) == 2
    assert "--version N, --env ENVIRONMENT or --alias ALIAS" in capsys.readouterr().err


# ----------------------------------------------------------------- another process
def test_a_second_process_loads_what_the_first_stored(ledger: modeltrail.Tracker, tmp_path: Path, db_url: str) -> None:
    model, v1 = fit_and_log(ledger, 0.7, tmp_path / "m.joblib")
    ledger.deploy("churn-rf", v1, "production")
    (tmp_path / "m.joblib").unlink()
    X, _ = data()
    np.save(tmp_path / "X.npy", X)
    script = (
        "import sys, numpy as np, modeltrail\n"
        "t = modeltrail.Tracker(sys.argv[1])\n"  # no store given: the ledger names it
        "m = t.load_model('churn-rf', environment='production')\n"
        "print(list(m.predict_proba(np.load(sys.argv[2]))[:, 1]))\n"
    )
    env = {**os.environ, "MODELTRAIL_CACHE_DIR": str(tmp_path / "other-cache")}
    done = subprocess.run(
        [sys.executable, "-c", script, db_url, str(tmp_path / "X.npy")], capture_output=True, text=True, env=env,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().replace("np.float64(", "").replace(")", "")) == pytest.approx(
        list(model.predict_proba(X)[:, 1]), abs=0
    )


# ----------------------------------------------------------------- the caller's cost
def test_log_artifact_does_no_io_on_the_training_thread(
    ledger: modeltrail.Tracker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller only queues: the file is hashed (and stored) on the writer thread."""
    import threading

    import modeltrail._writer as writer_mod

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20))
    threads: list[str] = []
    real = writer_mod.digest_path

    def spy(path: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(path)

    monkeypatch.setattr(writer_mod, "digest_path", spy)
    with ledger.training("churn-rf") as run:
        run.log_artifact(big, name="model", flavor="file")
    assert threads == ["modeltrail-writer"]
    assert ledger.artifacts("churn-rf")[0].sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    loaded = ledger.load_model("churn-rf")  # flavor "file": the verified path
    assert isinstance(loaded, Path) and loaded.read_bytes() == big.read_bytes()


def test_no_warning_for_a_configured_store(ledger: modeltrail.Tracker, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_and_log(ledger, 1.0, tmp_path / "m.joblib")


def test_dashboard_shows_aliases_tags_and_serves_verified_downloads(
    ledger: modeltrail.Tracker, tmp_path: Path, db_url: str, store_dir: Path
) -> None:
    import re

    from fastapi.testclient import TestClient

    from modeltrail.ui import app as ui_app

    path = tmp_path / "churn.joblib"
    _, v1 = fit_and_log(ledger, 0.5, path)
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "vocab.txt").write_text("a b")
    with ledger.training("churn-rf") as run:
        joblib.dump(LogisticRegression(C=2.0).fit(*data()), path)
        run.log_artifact(path)
        run.log_artifact(folder, name="tokenizer")
    ledger.set_alias("churn-rf", "champion", version=v1)
    ledger.tag_version("churn-rf", v1, {"validated": "yes"})
    ledger.describe_version("churn-rf", v1, "baseline")
    with TestClient(ui_app.create_app(db_url)) as client:
        html = client.get("/models/churn-rf").text
        section = html[html.index('<section id="registry">') : html.index('<section id="trainings">')]
        assert "champion → v1" in section and "validated=yes" in section and "baseline" in section
        links = re.findall(r'href="(/models/\d+/versions/\d+/artifacts/[^"]+)"', section)
        assert [link.rsplit("/", 3)[1:] for link in links] == [["2", "artifacts", "model"],
                                                               ["2", "artifacts", "tokenizer"],
                                                               ["1", "artifacts", "model"]]  # fmt: skip
        got = client.get(links[0])
        assert got.status_code == 200 and got.content == path.read_bytes()
        assert 'filename="churn.joblib"' in got.headers["content-disposition"]
        archive = client.get(links[1])
        assert archive.headers["content-type"] == "application/zip"
        import io
        import zipfile

        assert zipfile.ZipFile(io.BytesIO(archive.content)).read("vocab.txt") == b"a b"
        sha = ledger.artifacts("churn-rf", version=v1)[0].sha256
        (store_dir / "sha256" / sha[:2] / sha).write_bytes(b"tampered")
        refused = client.get(links[2])
        assert refused.status_code == 500 and "changed or damaged" in refused.text
        assert client.get("/models/churn-rf/versions/9/artifacts/model").status_code == 404
