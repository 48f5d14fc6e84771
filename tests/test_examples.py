"""The README's demo and the Lightning example, run as a user runs them, judged by the rows they leave."""

from __future__ import annotations

import os
import re
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
    # The story: both versions as a table, the change in words, deploy, roll back, the history, what next.
    assert re.search(r"version +n_estimators +max_depth +val_auc +val_accuracy +val_f1 +seconds\n +1 +40 +4 ", out)
    assert re.search(r"\n +2 +80 +8 +0\.\d{3} ", out), out
    assert "params:  max_depth 4 → 8, n_estimators 40 → 80" in out
    assert re.search(r"metrics: val_accuracy 0\.\d+ → 0\.\d+ \(better\), val_auc", out), out
    assert "deployed version 2 to staging (replaces version 1)" in out
    assert "rolled back: staging serves version 1 again" in out
    assert re.search(r"1 +deploy +superseded .*\n +2 +deploy +rolled_back .*\n +1 +rollback +active ", out), out
    assert ". .venv/bin/activate" in out and "{" not in out and "None" not in out  # no raw dicts, no "vNone"
    # Step 6: what staging serves, loaded back from the artifact store (the rolled-back-to version 1).
    assert re.search(r"version 1: RandomForestClassifier\(n_estimators=40, max_depth=4\), sha256 [0-9a-f]{12}\n", out)
    assert re.search(r"accuracy on the validation rows: 0\.\d{3}\n", out), out
    for command in (
        "modeltrail show churn-rf",
        "modeltrail ui",
        "modeltrail leaderboard churn-rf --metric val_auc",
        "modeltrail serve churn-rf --env staging",
    ):
        assert f"\n  {command} " in out, command
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    timeline = tracker.deployments("churn-rf", environment="staging")
    assert [(d.version, d.action, d.status) for d in timeline] == [
        (1, "deploy", "superseded"),
        (2, "deploy", "rolled_back"),
        (1, "rollback", "active"),
    ]
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
