"""The README's demo and the Lightning example, run as a user runs them, judged by the rows they leave."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import modeltrail

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, url: str, cwd: Path) -> str:
    env = {**os.environ, "MODELTRAIL_URI": url}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_demo_trains_twice_and_prints_both_versions(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    out = run_example("demo.py", db_url_sqlite_mysql, tmp_path)
    assert "churn-rf v1" in out and "churn-rf v2" in out and "changes vs parent v1" in out
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    first, second = tracker.versions("churn-rf")
    assert first.parent_number is None and second.parent_number == 1
    assert second.param_diff["changed"] == {
        "max_depth": {"old": 4, "new": 8},
        "n_estimators": {"old": 40, "new": 80},
    }
    for record in tracker.trainings("churn-rf"):
        assert record.status == "finished" and record.duration_s and record.dataset is not None
        assert record.metrics["val_auc"].count == record.params["n_estimators"] // 10
        assert Path(record.artifact_path or "").exists() and record.artifact_sha256
        assert record.context["seeds"] == {"random_state": 7}


@pytest.mark.slow
def test_lightning_example_leaves_two_versions(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    run_example("lightning_mnist.py", db_url_sqlite_mysql, tmp_path)
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    versions = tracker.versions("mnist-cnn")
    assert [v.number for v in versions] == [1, 2]
    assert versions[1].param_diff["changed"]["lr"] == {"old": 0.05, "new": 0.1}
    for record in tracker.trainings("mnist-cnn"):
        assert record.metrics["val_loss"].count >= 1 and record.params["trainer.max_epochs"] == 2
        assert Path(record.artifact_path or "").exists()
        assert [s.name for s in record.stages] == ["train"]
