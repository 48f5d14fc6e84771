"""Lineage forward (dataset -> training -> version -> deployments), backward (who used a dataset), and reproduce."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import modeltrail
from modeltrail import Dataset, ValidationError
from modeltrail import _context as context
from modeltrail.cli import main

DIGEST_A = "a1" * 32
DIGEST_B = "b2" * 32


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def build(url: str) -> modeltrail.Tracker:
    """churn-rf v1 on data A, v2 on data B, v3 on data A again; fraud v1 on data A. v3 serves production."""
    tracker = modeltrail.Tracker(url)
    for model, digest, depth in (("churn-rf", DIGEST_A, 3), ("churn-rf", DIGEST_B, 5), ("churn-rf", DIGEST_A, 8),
                                 ("fraud", DIGEST_A, 2)):  # fmt: skip
        data = Dataset(name=f"{model}-train", digest=digest, n_rows=100, n_features=4, source="s3://bucket/x.parquet")
        with tracker.training(model, params={"depth": depth, "db_password": "hunter2"}, dataset=data,
                              seeds={"numpy": depth}) as run:  # fmt: skip
            run.log_metric("auc", 0.8)
    tracker.deploy("churn-rf", 1, "staging")
    tracker.deploy("churn-rf", 3, "production")
    tracker.deploy("churn-rf", 1, "production")
    tracker.rollback("churn-rf", "production")  # production serves v3 again
    tracker.deploy("fraud", 1, "production")
    tracker.evaluate("churn-rf", version=3, dataset="test-2026-12", metrics={"auc": 0.9})
    return tracker


def test_lineage_is_the_chain_from_dataset_to_deployments(db_url: str) -> None:
    tracker = build(db_url)
    chain = tracker.lineage("churn-rf", 3)
    assert chain.model == "churn-rf" and chain.version.number == 3 and chain.version.parent_number == 2
    assert chain.dataset is not None and (chain.dataset.digest, chain.dataset.source) == (
        DIGEST_A,
        "s3://bucket/x.parquet",
    )
    assert chain.training.id == chain.version.training_id and chain.training.params["depth"] == 8
    assert chain.training.params["db_password"] == "***"
    assert chain.environment["python"] and chain.environment["packages"]["sqlalchemy"]
    assert chain.environment["command"] == chain.training.context["command"]
    assert [(d.environment, d.action, d.status) for d in chain.deployments] == [
        ("production", "deploy", "superseded"),
        ("production", "rollback", "active"),
    ]
    assert chain.environments == ["production"]
    assert [(e.dataset, e.metrics) for e in chain.evaluations] == [("test-2026-12", {"auc": 0.9})]
    assert tracker.lineage("churn-rf").version.number == 3  # the latest by default
    assert tracker.lineage("churn-rf", 1).environments == ["staging"]


def test_reverse_lineage_finds_versions_and_serving_environments_by_digest(db_url: str) -> None:
    tracker = build(db_url)
    uses = tracker.trained_on(DIGEST_A)
    assert [(u.model, u.version, u.environments) for u in uses] == [
        ("churn-rf", 1, ["staging"]),
        ("churn-rf", 3, ["production"]),
        ("fraud", 1, ["production"]),
    ]
    assert [(u.model, u.version) for u in tracker.trained_on(DIGEST_B[:8])] == [("churn-rf", 2)]  # a prefix works
    serving = tracker.serving_trained_on(DIGEST_A)
    assert [(d.model, d.environment, d.version, d.status) for d in serving] == [
        ("churn-rf", "production", 3, "active"),
        ("churn-rf", "staging", 1, "active"),
        ("fraud", "production", 1, "active"),
    ]
    assert tracker.serving_trained_on(DIGEST_B) == []  # v2 never served
    assert tracker.trained_on("c" * 64) == []
    with pytest.raises(ValidationError, match="prefix of at least"):
        tracker.trained_on("a1")
    assert tracker.trained_on("a1a1a1%") == []  # a LIKE wildcard is matched literally, not as "anything"


def test_cli_prints_the_lineage_and_the_reverse_questions(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    build(db_url).close()
    assert main(["--uri", db_url, "lineage", "churn-rf", "3"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "churn-rf version 3"
    assert f"dataset   churn-rf-train  sha256 {DIGEST_A}" in text
    assert "depth=8" in text and "db_password=***" in text and "hunter2" not in text
    assert "-> version 3 (parent 2)" in text and "test-2026-12" in text
    assert text.rstrip().endswith("serving now: production")

    assert main(["--uri", db_url, "lineage", "--dataset", DIGEST_A[:10]]) == 0
    text = capsys.readouterr().out
    assert "versions trained on dataset" in text and "fraud" in text
    serving = text.split("serving now:")[1].splitlines()
    assert [line.split()[:3] for line in serving[2:]] == [
        ["production", "churn-rf", "3"],
        ["staging", "churn-rf", "1"],
        ["production", "fraud", "1"],
    ]

    assert main(["--uri", db_url, "--json", "lineage", "churn-rf", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dataset"]["digest"] == DIGEST_B and data["environments"] == [] and data["version"]["number"] == 2
    assert main(["--uri", db_url, "lineage"]) == 2
    assert "needs a model" in capsys.readouterr().err


def test_reproduce_prints_what_retraining_needs_and_check_lists_every_difference(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path  # the tests run in tmp_path: make it a git work tree
    git(repo, "init", "-q")
    (repo / "train.py").write_text("print('v1')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    commit = git(repo, "rev-parse", "HEAD")
    data_file = repo / "train.csv"
    data_file.write_text("a,b\n1,2\n")
    data = Dataset.from_file(data_file, name="train.csv")
    tracker = modeltrail.Tracker(sqlite_url)
    with tracker.training("churn-rf", params={"depth": 8, "api_key": "k"}, dataset=data, seeds={"numpy": 42}):
        pass
    recorded = tracker.reproduce("churn-rf", 1)
    assert (recorded.git_commit, recorded.git_dirty, recorded.seeds) == (commit, False, {"numpy": 42})

    assert main(["--uri", sqlite_url, "reproduce", "churn-rf", "1"]) == 0
    text = capsys.readouterr().out
    assert f"git checkout {commit}" in text and f"cd {repo}" in text
    assert "depth=8" in text and "api_key=***" in text and "numpy=42" in text
    assert f"train.csv sha256 {data.digest}" in text and "sqlalchemy==" in text

    assert main(["--uri", sqlite_url, "reproduce", "churn-rf", "--check", "--dataset", str(data_file)]) == 0
    assert "no differences from this environment" in capsys.readouterr().out

    # Now change everything that can change: the code (committed, then edited again), a package, the data.
    (repo / "train.py").write_text("print('v2')\n")
    git(repo, "commit", "-q", "-am", "v2")
    (repo / "train.py").write_text("print('v3, not committed')\n")
    data_file.write_text("a,b\n1,3\n")
    packages = dict(recorded.packages)
    packages["sqlalchemy"] = "0.0.1"
    packages["brand-new-package"] = "1.0"
    monkeypatch.setattr(context, "package_versions", lambda: packages)
    assert (
        main(["--uri", sqlite_url, "--json", "reproduce", "churn-rf", "1", "--check", "--dataset", str(data_file)]) == 1
    )
    found = {d["what"]: (d["recorded"], d["current"]) for d in json.loads(capsys.readouterr().out)["differences"]}
    assert found == {
        "git.commit": (commit, git(repo, "rev-parse", "HEAD")),
        "git.dirty": (False, True),
        "package sqlalchemy": (recorded.packages["sqlalchemy"], "0.0.1"),
        "package brand-new-package": (None, "1.0"),
        "dataset.digest": (data.digest, Dataset.from_file(data_file).digest),
    }
    assert main(["--uri", sqlite_url, "reproduce", "churn-rf", "--check"]) == 1
    text = capsys.readouterr().out
    assert "4 differences from this environment:" in text and "brand-new-package" in text
