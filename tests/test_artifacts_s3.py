"""The artifact store on S3 for real: moto's server on 127.0.0.1 reached through s3fs, like a user's bucket."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LogisticRegression
from tests._s3 import BUCKET, S3Server, s3_server

import modeltrail
from modeltrail.cli import main as cli

SECRET = "s3cr3t-Never-Shown"


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELTRAIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MODELTRAIL_ARTIFACTS", raising=False)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with s3_server(monkeypatch) as server:
        yield server


def fit(C: float) -> LogisticRegression:
    return LogisticRegression(C=C).fit([[0.0], [1.0], [0.2], [0.9]], [0, 1, 0, 1])


def test_s3_store_round_trip_and_a_second_process(
    db_url: str, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{BUCKET}/registry-{uuid.uuid4().hex[:8]}"
    with modeltrail.Tracker(db_url, artifacts=url, artifact_options=s3.options()) as tracker:
        with tracker.training("churn-rf") as run:
            joblib.dump(fit(0.3), tmp_path / "m.joblib")
            run.log_artifact(tmp_path / "m.joblib")
        row = tracker.artifacts("churn-rf")[0]
        assert (row.state, row.store_url) == ("stored", url)
        prefix = url.removeprefix(f"s3://{BUCKET}/")
        assert s3.keys(f"{prefix}/") == [f"{prefix}/sha256/{row.sha256[:2]}/{row.sha256}"]
        assert tracker.load_model("churn-rf").C == 0.3
        tracker.deploy("churn-rf", 1, "production")
    # Another process: only the database URL; the store comes from the ledger, the endpoint from the environment.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    script = (
        "import sys, modeltrail\n"
        "print(modeltrail.Tracker(sys.argv[1]).load_model('churn-rf', environment='production').C)"
    )
    env = {**os.environ, "MODELTRAIL_CACHE_DIR": str(tmp_path / "other")}
    done = subprocess.run(
        [sys.executable, "-c", script, db_url], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0.3"


def test_tampered_object_in_the_bucket_is_refused(db_url: str, s3: S3Server, tmp_path: Path) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    with modeltrail.Tracker(db_url, artifacts=f"s3://{BUCKET}/{prefix}", artifact_options=s3.options()) as tracker:
        with tracker.training("churn-rf") as run:
            joblib.dump(fit(1.0), tmp_path / "m.joblib")
            run.log_artifact(tmp_path / "m.joblib")
        key = s3.keys(f"{prefix}/")[0]
        s3.client().put_object(Bucket=BUCKET, Key=key, Body=b"not the model")
        with pytest.raises(modeltrail.ArtifactIntegrityError) as caught:
            tracker.load_model("churn-rf")
        assert f"s3://{BUCKET}/{key}" in str(caught.value) and "changed or damaged" in str(caught.value)


def test_store_down_spools_then_stores_when_it_is_back(db_url: str, s3: S3Server, tmp_path: Path) -> None:
    prefix = f"r-{uuid.uuid4().hex[:8]}"  # moto keeps one bucket per process: each test its own prefix
    with modeltrail.Tracker(db_url, artifacts=f"s3://{BUCKET}/{prefix}", artifact_options=s3.options()) as tracker:
        s3.stop()
        path = tmp_path / "m.joblib"
        with pytest.warns(modeltrail.ModeltrailWarning, match="staged"), tracker.training("churn-rf") as run:
            joblib.dump(fit(2.0), path)
            run.log_artifact(path)
        assert run.version is not None and run.status == "finished"  # training is never stopped by the store
        row = tracker.artifacts("churn-rf")[0]
        assert row.state == "pending"
        joblib.dump(fit(99.0), path)  # the file changes afterwards: the staged copy keeps the logged bytes
        with pytest.raises(modeltrail.ArtifactNotStoredError, match="not stored yet"):
            tracker.load_model("churn-rf")
        s3.start()
        tracker.sync()
        row = tracker.artifacts("churn-rf")[0]
        assert row.state == "stored" and row.stored_at is not None
        assert s3.keys(f"{prefix}/") == [f"{prefix}/sha256/{row.sha256[:2]}/{row.sha256}"]
        assert tracker.load_model("churn-rf").C == 2.0


def test_credentials_in_the_store_url_never_reach_output_logs_or_the_ledger(
    db_url: str,
    s3: S3Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    row_counts: object,
) -> None:
    from sqlalchemy import create_engine, text

    url = f"s3://testing:{SECRET}@{BUCKET}/r"
    caplog.set_level(logging.DEBUG, logger="modeltrail")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with modeltrail.Tracker(db_url, artifacts=url, artifact_options=s3.options()) as tracker:
            with tracker.training("churn-rf") as run:
                joblib.dump(fit(0.5), tmp_path / "m.joblib")
                run.log_artifact(tmp_path / "m.joblib")
            assert tracker.load_model("churn-rf").C == 0.5
            s3.stop()  # an outage's warning names the store too
            with tracker.training("churn-rf") as run:
                joblib.dump(fit(0.6), tmp_path / "n.joblib")
                run.log_artifact(tmp_path / "n.joblib")
            s3.start()
            tracker.sync()
            assert repr(tracker.artifact_store) == f"ArtifactStore('s3://{BUCKET}/r')"
    assert cli(["--uri", db_url, "show", "churn-rf"]) == 0
    assert cli(["--uri", db_url, "--json", "artifacts", "churn-rf"]) == 0
    shown = capsys.readouterr()
    assert f"s3://{BUCKET}/r/sha256/" in shown.out
    texts = [shown.out, shown.err, caplog.text, *(str(w.message) for w in seen)]
    engine = create_engine(db_url)
    with engine.connect() as conn:
        for table in ("artifacts", "ledger_settings", "audit_events", "trainings", "versions"):
            texts.append(json.dumps([list(map(str, r)) for r in conn.execute(text(f"SELECT * FROM {table}"))]))
        assert conn.execute(text("SELECT value FROM ledger_settings")).scalar() == f"s3://{BUCKET}/r"
    engine.dispose()
    assert any("cannot be reached" in str(w.message) for w in seen)
    assert not [t for t in texts if SECRET in t]
