"""The standard record: export -> import into another ledger -> export gives the same bytes."""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import make_db_url

import modeltrail
from modeltrail import Dataset, ValidationError
from modeltrail._exchange.export import dumps
from modeltrail._exchange.format import json_schema, schema_errors
from modeltrail.cli import main


@pytest.fixture
def other_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty ledger on the same backend as ``db_url``."""
    backend = "sqlite" if db_url.startswith("sqlite") else "mysql" if db_url.startswith("mysql") else "postgres"
    folder = tmp_path / "other"
    folder.mkdir()
    yield from make_db_url(backend, folder)


def build(url: str, tmp_path: Path) -> None:
    """Two versions with everything a version can have: secrets, NaN/inf, stages, artifact, evaluations, deployments."""
    tracker = modeltrail.Tracker(url)
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    data = Dataset(name="churn-2026-11", digest="d" * 64, n_rows=10, n_features=2, shape=(10, 2), features=("a", "b"))
    for depth in (3, 5):
        with tracker.training(
            "churn-rf", framework="sklearn", model_type="classifier", description="churn model",
            params={"depth": depth, "api_token": "s3cret", "lr": 0.1, "grid": [1, 2.5, None], "big": 2**70,
                    "odd": math.inf},
            dataset=data, seeds={"numpy": depth}, tags={"team": "risk"},
        ) as run:  # fmt: skip
            with run.stage("preprocess") as stage:
                stage.log_param("scaler", "standard")
            for step, value in enumerate([0.5, math.nan, 0.7, math.inf, -math.inf, 0.1 + 0.2]):
                run.log_metric("val_auc", value, step=step)
            run.log_metric("val_auc", 0.9, step=2)  # a second point at a step: logging order is kept
            run.log_artifact(artifact)
            run.add_context({"checkpoint": {"best_score": 1 / 3}})
    tracker.evaluate("churn-rf", version=1, dataset="test", metrics={"auc": 0.8, "loss": math.nan})
    tracker.evaluate("churn-rf", version=2, dataset=Dataset(name="test", digest="e" * 64), metrics={"auc": 0.85})
    tracker.deploy("churn-rf", 1, "production", endpoint="https://x/predict", reason="first")
    tracker.deploy("churn-rf", 2, "production", reason="better")
    tracker.log_production_metrics("churn-rf", "production", {"latency_ms": 12.5, "live_auc": math.nan})
    tracker.rollback("churn-rf", "production", reason="regression")
    tracker.deploy("churn-rf", 2, "staging")
    tracker.undeploy("churn-rf", "staging")
    tracker.close()


def keys_outside_free_form(doc: Any) -> list[str]:
    """Every key of a document except inside params, contexts and diffs (whose keys are the user's)."""
    out: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.append(key)
            if key not in ("params", "context", "param_diff"):
                out += keys_outside_free_form(value)
    elif isinstance(doc, list):
        for item in doc:
            out += keys_outside_free_form(item)
    return out


def test_export_import_export_is_byte_identical(
    db_url: str, other_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build(db_url, tmp_path)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert main(["--uri", db_url, "export", "churn-rf", "-o", str(first)]) == 0
    assert "exported 2 versions of churn-rf" in capsys.readouterr().out
    assert main(["--uri", other_url, "import", str(first)]) == 0
    assert "imported 2 versions (churn-rf v1, churn-rf v2)" in capsys.readouterr().out
    assert main(["--uri", other_url, "export", "churn-rf", "-o", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()

    docs = [json.loads(line) for line in first.read_text().splitlines()]
    assert [d["version"]["number"] for d in docs] == [1, 2]
    assert all(schema_errors(d) == [] for d in docs)
    v1, v2 = docs
    assert not [k for k in keys_outside_free_form(v1) if k == "id" or k.endswith("_id")]  # no database ids
    assert v1["training"]["params"]["api_token"] == {"display": "***", "value": "***"}
    assert "s3cret" not in first.read_text()
    assert v1["training"]["params"]["odd"]["value"] == {"$float": "inf"}
    assert [p[1] for p in v1["training"]["metrics"]["val_auc"]] == [
        0.5, {"$float": "nan"}, 0.7, {"$float": "inf"}, {"$float": "-inf"}, 0.30000000000000004, 0.9,
    ]  # fmt: skip
    assert v1["training"]["stages"][0]["params"] == {"scaler": "standard"}
    assert v1["evaluations"][0]["metrics"] == {"auc": 0.8, "loss": {"$float": "nan"}}
    assert [(d["environment"], d["action"], d["status"]) for d in v2["deployments"]] == [
        ("production", "deploy", "rolled_back"),
        ("staging", "deploy", "retired"),
        ("staging", "undeploy", "retired"),
    ]
    assert v2["deployments"][0]["replaces"]["version"] == 1
    assert v2["deployments"][0]["production_metrics"][0] == {
        "measured_at": v2["deployments"][0]["production_metrics"][0]["measured_at"],
        "metric": "latency_ms",
        "value": 12.5,
    }

    # What the other ledger answers is what the first one answered.
    a, b = modeltrail.Tracker(db_url), modeltrail.Tracker(other_url)
    assert b.deployment("churn-rf", "production").version == 1 and b.deployment("churn-rf", "staging") is None
    ta, tb = a.trainings("churn-rf"), b.trainings("churn-rf")
    assert [t.uuid for t in ta] == [t.uuid for t in tb]
    assert ta[1].metrics["val_auc"] == tb[1].metrics["val_auc"]  # summaries rebuilt from the history
    assert b.versions("churn-rf")[1].parent_number == 1
    b.deploy("churn-rf", 2, "production")
    assert b.rollback("churn-rf", "production").version == 1  # the imported timeline works as a timeline
    (event,) = b.audit(action="ledger.import")
    assert event.after["imported"] == [["churn-rf", 1], ["churn-rf", 2]] and event.after["source"] == "first.jsonl"
    # Each imported version was made by the one version write path, with its own event.
    created = sorted((e.after["number"], e.after["param_diff"]) for e in b.audit(action="version.create"))
    assert [n for n, _ in created] == [1, 2] and created[1][1] == b.versions("churn-rf")[1].param_diff


def test_importing_twice_changes_nothing_and_a_taken_number_is_refused(
    count_rows: Callable[..., Any], db_url: str, other_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build(db_url, tmp_path)
    docs = modeltrail.Tracker(db_url).export("churn-rf")
    target = modeltrail.Tracker(other_url)
    assert target.import_documents(docs)["imported"] == [["churn-rf", 1], ["churn-rf", 2]]
    points = count_rows(other_url, "metric_points")
    again = target.import_documents(docs)
    assert (again["imported"], again["skipped"]) == ([], [["churn-rf", 1], ["churn-rf", 2]])
    assert count_rows(other_url, "metric_points") == points and count_rows(other_url, "versions") == 2
    assert len(target.audit(action="ledger.import")) == 1  # an import that changed nothing writes no event

    # A ledger whose version 2 is another training: nothing at all is imported.
    third = tmp_path / "third.db"
    other = modeltrail.Tracker(f"sqlite:///{third}")
    with other.training("churn-rf"):
        pass
    with other.training("churn-rf"):
        pass
    with pytest.raises(ValidationError, match="version 1 of model 'churn-rf' already exists"):
        other.import_documents(docs)
    assert [v.number for v in other.versions("churn-rf")] == [1, 2] and other.evaluations("churn-rf") == []
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(dumps(d) + "\n" for d in docs))
    assert main(["--uri", f"sqlite:///{third}", "import", str(path)]) == 2
    assert "already exists in this ledger with other content" in capsys.readouterr().err
    assert other.audit(action="ledger.import") == []


def test_an_imported_active_deployment_never_makes_two(sqlite_url: str, tmp_path: Path) -> None:
    build(sqlite_url, tmp_path)
    docs = modeltrail.Tracker(sqlite_url).export("churn-rf", version=1)
    target = modeltrail.Tracker(f"sqlite:///{tmp_path / 'target.db'}")
    with target.training("churn-rf"):
        pass
    target.deploy("churn-rf", 1, "production")
    for d in docs:
        d["version"]["number"] = 7
    with pytest.raises(ValidationError, match="already has an active deployment in 'production'"):
        target.import_documents(docs)
    assert [v.number for v in target.versions("churn-rf")] == [1]
    result = target.import_documents(docs, deployments=False)
    assert result["imported"] == [["churn-rf", 7]] and target.deployment("churn-rf", "production").version == 1


def test_documents_that_break_the_schema_are_refused(sqlite_url: str, tmp_path: Path) -> None:
    build(sqlite_url, tmp_path)
    tracker = modeltrail.Tracker(sqlite_url)
    (doc,) = tracker.export("churn-rf", version=2)
    bad = json.loads(json.dumps(doc))
    bad["training"]["metrics"]["val_auc"][0][1] = "NaN"
    del bad["version"]["created_at"]
    bad["surprise"] = 1
    errors = schema_errors(bad)
    assert "$.training.metrics.val_auc[0][1]: matches none of the allowed forms" in errors
    assert "$.version: 'created_at' is missing" in errors and "$: unexpected key 'surprise'" in errors
    target = modeltrail.Tracker(f"sqlite:///{tmp_path / 'target.db'}")
    with pytest.raises(ValidationError, match="does not follow the modeltrail schema"):
        target.import_documents([doc, bad])
    assert target.models() == []


def test_checking_a_document_without_jsonschema_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from modeltrail._exchange import format as document_format

    monkeypatch.setitem(sys.modules, "jsonschema", None)  # as if not installed
    document_format._validator.cache_clear()
    try:
        with pytest.raises(modeltrail.ConfigurationError, match=r'pip install "modeltrail\[schema\]"') as info:
            schema_errors({})
        assert "\n" not in str(info.value)
    finally:
        document_format._validator.cache_clear()


def test_export_to_a_directory_writes_one_schema_valid_file_per_version(sqlite_url: str, tmp_path: Path) -> None:
    build(sqlite_url, tmp_path)
    out = tmp_path / "export"
    assert main(["--uri", sqlite_url, "export", "churn-rf", "--dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["churn-rf-v1.json", "churn-rf-v2.json"]
    doc = json.loads((out / "churn-rf-v2.json").read_text())
    assert schema_errors(doc) == [] and doc["version"]["number"] == 2
    assert main(["--uri", sqlite_url, "export", "churn-rf", "--version", "2", "-o", str(tmp_path / "v2.jsonl")]) == 0
    assert json.loads((tmp_path / "v2.jsonl").read_text()) == doc
    # the schema ships inside the package and describes what export writes
    assert json_schema()["properties"]["format"] == {"const": "modeltrail.model-version"}
    target = tmp_path / "from-dir.db"
    assert main(["--uri", f"sqlite:///{target}", "import", str(out)]) == 0
    assert [v.number for v in modeltrail.Tracker(f"sqlite:///{target}").versions("churn-rf")] == [1, 2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_long_commands_show_progress_on_a_terminal_and_stay_quiet_when_piped(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    build(sqlite_url, tmp_path)
    out = tmp_path / "out.jsonl"
    assert main(["--uri", sqlite_url, "export", "churn-rf", "-o", str(out)]) == 0
    assert main(["--uri", f"sqlite:///{tmp_path / 'piped.db'}", "import", str(out)]) == 0
    assert capsys.readouterr().err == ""  # piped: no bar

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["--uri", f"sqlite:///{tmp_path / 'tty.db'}", "import", str(out)]) == 0
    assert "importing [" in terminal.getvalue() and "2/2 versions 100%" in terminal.getvalue()
    for command in (["db", "upgrade"], ["sync"]):
        terminal.seek(0)
        terminal.truncate(0)
        assert main([*command, "--uri", sqlite_url]) == 0
        assert terminal.getvalue().startswith("\r") and terminal.getvalue().endswith("\n")
    assert "replaying 0 spooled entries" in terminal.getvalue()
