"""The ``modeltrail`` command: tables for people, ``--json`` for scripts, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

import modeltrail
from modeltrail import Dataset
from modeltrail.cli import main


def build_ledger(url: str) -> None:
    """churn-rf with three versions: v1 peaks early (best AUC), v2 ends highest, v3 drops a param."""
    tracker = modeltrail.Tracker(url)
    runs = [
        ({"lr": 0.1, "depth": 3}, [0.60, 0.95, 0.80], "a"),
        ({"lr": 0.2, "depth": 3}, [0.70, 0.85, 0.90], "a"),
        ({"lr": 0.3, "trees": 10}, [0.50, 0.70, 0.75], "b"),
    ]
    for params, auc, digest in runs:
        data = Dataset(name="churn", digest=digest * 64, n_rows=100)
        with tracker.training(
            "churn-rf", framework="sklearn", model_type="classifier", params=params, dataset=data
        ) as r:
            for step, value in enumerate(auc):
                r.log_metrics({"val_auc": value, "val_loss": 1 - value}, step=step)
    with tracker.training("churn-lgbm", framework="lightgbm", tags={"team": "risk"}) as r:
        r.log_metric("val_auc", 0.8)
    tracker.close()


@pytest.fixture
def ledger(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    build_ledger(sqlite_url)
    monkeypatch.setenv("MODELTRAIL_URI", sqlite_url)
    return sqlite_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, "--json", *argv)
    assert (code, err) == (0, ""), err
    return json.loads(out)


# ------------------------------------------------------------------ reading
def test_models_table_and_json_with_filters(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["id", "name", "framework", "type", "latest", "tags"]
    assert [line.split()[1] for line in lines[1:]] == ["churn-lgbm", "churn-rf"]
    models = run_json(capsys, "models")
    assert [(m["name"], m["latest_version"]) for m in models] == [("churn-lgbm", 1), ("churn-rf", 3)]
    assert [m["name"] for m in run_json(capsys, "models", "--framework", "sklearn")] == ["churn-rf"]
    assert [m["name"] for m in run_json(capsys, "models", "--tag", "team=risk")] == ["churn-lgbm"]
    assert [m["name"] for m in run_json(capsys, "models", "--name", "rf", "--json")] == ["churn-rf"]
    assert run(capsys, "models", "--type", "regressor")[1].strip() == "no models match"


def test_show_versions_and_compare(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "churn-rf")
    assert code == 0 and out.startswith("model churn-rf (id ")
    assert "churn@aaaaaaaa" in out and "churn@bbbbbbbb" in out and "val_auc=0.75" in out
    details = run_json(capsys, "show", "churn-rf")
    assert [v["version"]["number"] for v in details["versions"]] == [1, 2, 3]
    assert details["versions"][0]["training"]["params"] == {"lr": 0.1, "depth": 3}

    versions = run_json(capsys, "versions", "churn-rf")
    assert versions[2]["param_diff"] == {
        "added": {"trees": 10}, "removed": {"depth": 3}, "changed": {"lr": {"old": 0.2, "new": 0.3}},
    }  # fmt: skip
    assert "+trees -depth ~lr" in run(capsys, "versions", "churn-rf")[1]

    c = run_json(capsys, "compare", "churn-rf", "1", "3")
    assert c["params"] == {"added": {"trees": 10}, "removed": {"depth": 3}, "changed": {"lr": {"old": 0.1, "new": 0.3}}}
    auc = next(m for m in c["metrics"] if m["key"] == "val_auc")
    assert (auc["last_a"], auc["last_b"], auc["best_a"], auc["best_b"]) == (0.8, 0.75, 0.95, 0.75)
    assert c["dataset_changed"] is True and c["code_changed"] is False
    code, out, _ = run(capsys, "compare", "churn-rf", "1", "3")
    assert "lr     changed  0.1  0.3" in out and "dataset: churn@aaaaaaaaaaaa -> churn@bbbbbbbbbbbb (changed)" in out


def test_best_leaderboard_and_history(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    best = run_json(capsys, "best", "churn-rf", "--metric", "val_auc")
    assert (best["version"], best["value"]) == (1, 0.95)
    last = run_json(capsys, "best", "churn-rf", "--metric", "val_auc", "--by", "last")
    assert (last["version"], last["value"]) == (2, 0.9)
    assert run_json(capsys, "best", "churn-rf", "--metric", "val_loss", "--mode", "min")["version"] == 1
    code, out, _ = run(capsys, "best", "churn-rf", "--metric", "val_auc")
    assert code == 0
    assert out.strip() == "churn-rf version 1: val_auc = 0.95 (best over its history, step 1)"

    board = run_json(capsys, "leaderboard", "churn-rf", "--metric", "val_auc", "--by", "last")
    assert [(e["rank"], e["version"]) for e in board] == [(1, 2), (2, 1), (3, 3)]

    points = run_json(capsys, "history", "churn-rf", "--version", "1", "--metric", "val_auc")
    assert [(p["step"], p["value"]) for p in points] == [(0, 0.6), (1, 0.95), (2, 0.8)]
    curves = run_json(capsys, "history", "churn-rf", "--metric", "val_auc", "--all-versions")
    assert [p["version"] for p in curves] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    per_version = run_json(capsys, "history", "churn-rf", "--metric", "val_auc", "--across-versions")
    assert [(r["version"], r["last"], r["best"]) for r in per_version] == [
        (1, 0.8, 0.95),
        (2, 0.9, 0.9),
        (3, 0.75, 0.75),
    ]


# --------------------------------------------------------------- deployments
def test_deploy_rollback_undeploy_and_timeline(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    build_ledger(db_url)
    u = ("--uri", db_url)
    code, out, _ = run(capsys, *u, "deploy", "churn-rf", "1", "--env", "production", "--reason", "launch")
    assert code == 0 and out.strip() == "deployed: deployment 1: churn-rf version 1 in production"
    d2 = run_json(capsys, *u, "deploy", "churn-rf", "2", "--env", "production", "--endpoint", "https://api/v2")
    assert (d2["version"], d2["status"], d2["replaces_id"], d2["endpoint"]) == (2, "active", 1, "https://api/v2")
    run(capsys, *u, "deploy", "churn-rf", "2", "--env", "staging", "--by", "ci")

    back = run_json(capsys, "rollback", "churn-rf", "--env", "production", "--reason", "alerts", *u)
    assert (back["version"], back["action"], back["rollback_of_id"]) == (1, "rollback", 2)
    code, _, err = run(capsys, *u, "rollback", "churn-rf", "--env", "production")
    assert code == 2 and err.startswith("modeltrail: error: nothing to roll back to") and err.count("\n") == 1

    timeline = run_json(capsys, *u, "deployments", "churn-rf", "--env", "production")
    assert [(d["version"], d["status"], d["action"]) for d in timeline] == [
        (1, "superseded", "deploy"), (2, "rolled_back", "deploy"), (1, "active", "rollback"),
    ]  # fmt: skip
    where = run_json(capsys, *u, "deployments", "churn-rf", "--version", "2", "--current")
    assert [(d["environment"], d["deployed_by"]) for d in where] == [("staging", "ci")]
    then = run_json(capsys, *u, "deployments", "churn-rf", "--at", "2000-01-01")
    assert then == {"production": None, "staging": None}
    now = run_json(capsys, *u, "deployments", "churn-rf", "--at", "2999-01-01T00:00:00Z")
    assert (now["production"]["version"], now["staging"]["version"]) == (1, 2)

    gone = run_json(capsys, *u, "undeploy", "churn-rf", "--env", "staging", "--reason", "cleanup")
    assert (gone["action"], gone["status"]) == ("undeploy", "retired")
    code, out, _ = run(capsys, *u, "deployments", "churn-rf", "--current")
    assert code == 0 and "staging" not in out and "production" in out

    events = run_json(capsys, *u, "audit", "--action", "deployment.*")
    assert [e["action"] for e in events] == [
        "deployment.undeploy", "deployment.rollback", "deployment.deploy", "deployment.deploy", "deployment.deploy",
    ]  # fmt: skip
    assert events[1]["after"]["reason"] == "alerts"


def test_production_metrics_command(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    tracker = modeltrail.Tracker(ledger)
    tracker.deploy("churn-rf", 2, "production")
    tracker.log_production_metrics("churn-rf", "production", {"val_auc": 0.8})
    rows = run_json(capsys, "production", "churn-rf", "--env", "production", "--metric", "val_auc")
    assert [(r["version"], r["value"], r["training_last"]) for r in rows] == [(2, 0.8, 0.9)]
    assert rows[0]["delta_last"] == pytest.approx(-0.1)
    assert "production" in run(capsys, "production", "churn-rf")[1]


# --------------------------------------------------------------------- plots
def test_plot_writes_png_curves_and_across_versions(ledger: str, capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    modeltrail.Tracker(ledger).deploy("churn-rf", 2, "production")
    code, out, err = run(capsys, "plot", "churn-rf", "--metric", "val_loss", "-o", "curves.png")
    assert (code, err) == (0, "") and out.strip() == "wrote curves.png"
    code, _, err = run(capsys, "plot", "churn-rf", "--metric", "val_auc", "--across-versions", "-o", "versions.png")
    assert (code, err) == (0, "")
    for name in ("curves.png", "versions.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    code, _, err = run(capsys, "plot", "churn-rf", "--metric", "missing", "-o", "none.png")
    assert code == 2 and "missing" in err and not (tmp_path / "none.png").exists()


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["compare", "churn-rf", "1", "x"],
        ["compare", "churn-rf", "1", "99"],
        ["show", "missing"],
        ["best", "churn-rf", "--metric", "val_auc", "--mode", "up"],
        ["best", "churn-rf", "--metric", "never_logged"],
        ["deploy", "churn-rf", "99", "--env", "production"],
        ["deploy", "churn-rf", "1"],
        ["rollback", "churn-rf", "--env", "production"],
        ["undeploy", "churn-rf", "--env", "production"],
        ["deployments", "churn-rf", "--at", "yesterday"],
        ["history", "churn-rf", "--across-versions"],
        ["plot", "churn-rf", "--metric", "val_loss", "-o", "curves.unknownformat"],
        ["--uri", "nosuchdriver://x/y", "models"],
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    count_rows: Callable[..., Any], ledger: str, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("modeltrail: error: ") and err.count("\n") == 1, err
    assert count_rows(ledger, "deployments") == 0


@pytest.mark.parametrize(
    "name", ["x'; DROP TABLE models; --", "churn-rf' OR '1'='1", "1 OR 1=1", 'churn-rf"; DELETE FROM versions; --']
)
def test_sql_injection_is_just_a_name_that_is_not_found(
    count_rows: Callable[..., Any], ledger: str, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    for argv in (["show", name], ["versions", name], ["compare", name, "1", "2"], ["deploy", name, "1", "--env", "p"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "no model" in err, err
    assert run_json(capsys, "models", "--tag", f"team={name}") == []
    assert run_json(capsys, "models", "--name", name) == []
    assert run_json(capsys, "models", "--name", "%") == []
    assert run_json(capsys, "deployments", "churn-rf", "--env", name[:60].strip()) == []
    assert [m["name"] for m in run_json(capsys, "models")] == ["churn-lgbm", "churn-rf"]
    assert (count_rows(ledger, "models"), count_rows(ledger, "versions")) == (2, 4)


def test_password_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--uri", "mysql+pymysql://root:s3cret-pw@127.0.0.1:1/ledger", "models")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "s3cret-pw" not in err and "root:***@127.0.0.1" in err


def test_missing_sqlite_file_is_an_error_and_is_not_created(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    code, _, err = run(capsys, "--uri", "sqlite:///absent.db", "models")
    assert code == 2 and "no modeltrail database at 'absent.db'" in err
    assert not (tmp_path / "absent.db").exists()


# ----------------------------------------------------------------------- db
def test_db_upgrade_brings_an_outdated_database_to_head(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from alembic import command

    from modeltrail import _migrations as migrations

    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), migrations.REVISIONS[0])
    engine.dispose()
    with pytest.raises(modeltrail.SchemaOutdatedError):
        modeltrail.Tracker(db_url)
    state = run_json(capsys, "--uri", db_url, "db", "current")
    assert (state["current"], state["state"]) == (migrations.REVISIONS[0], "outdated")
    code, _, err = run(capsys, "--uri", db_url, "models")
    assert code == 2 and "modeltrail db upgrade" in err

    result = run_json(capsys, "db", "upgrade", "--uri", db_url)
    assert result == {"uri": result["uri"], "from": migrations.REVISIONS[0], "to": migrations.head_revision()}
    assert run_json(capsys, "db", "current", "--uri", db_url)["state"] == "up to date"
    code, out, _ = run(capsys, "--uri", db_url, "db", "upgrade")
    assert code == 0 and "already at" in out
    build_ledger(db_url)  # the upgraded database takes trainings and deployments
    modeltrail.Tracker(db_url).deploy("churn-rf", 1, "production")
    assert [e["action"] for e in run_json(capsys, "--uri", db_url, "audit", "--action", "schema.*")] == [
        "schema.upgrade"
    ]


def test_db_upgrade_creates_a_new_sqlite_ledger(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    from modeltrail import _migrations as migrations

    url = f"sqlite:///{tmp_path / 'new' / 'ledger.db'}"
    result = run_json(capsys, "--uri", url, "db", "upgrade")
    assert (result["from"], result["to"]) == (None, migrations.head_revision())
    assert run_json(capsys, "--uri", url, "models") == []


# ---------------------------------------------------------------------- run
def test_run_passes_script_arguments_and_exit_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple] = []

    def run_script(path: str, argv: list[str], *, uri: str | None, model: str | None) -> int:
        calls.append((path, argv, uri, model))
        return 3

    fake = types.ModuleType("modeltrail.integrations.autolog")
    fake.run_script = run_script
    monkeypatch.setitem(sys.modules, "modeltrail.integrations.autolog", fake)
    code, _, _ = run(capsys, "--uri", "sqlite:///x.db", "run", "--model", "m", "train.py", "--epochs", "3", "-v")
    assert code == 3
    assert calls == [("train.py", ["--epochs", "3", "-v"], "sqlite:///x.db", "m")]


# ------------------------------------------------------------- subprocesses
def _command() -> list[str]:
    script = Path(sys.executable).with_name("modeltrail")
    return [str(script)] if script.exists() else [sys.executable, "-m", "modeltrail.cli"]


def test_real_subprocess_uses_modeltrail_uri_and_exit_codes(ledger: str) -> None:
    env = {**os.environ, "MODELTRAIL_URI": ledger}
    done = subprocess.run(
        [*_command(), "compare", "churn-rf", "1", "2", "--json"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params"]["changed"] == {"lr": {"old": 0.1, "new": 0.2}}
    bad = subprocess.run([*_command(), "show", "no-such-model"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "modeltrail: error: no model 'no-such-model'\n"
    deployed = subprocess.run(
        [*_command(), "deploy", "churn-rf", "3", "--env", "production"], env=env, capture_output=True, text=True
    )
    assert deployed.returncode == 0 and modeltrail.Tracker(ledger).deployment("churn-rf", "production").version == 3


def test_db_grants_prints_statements_for_the_uri_database(capsys) -> None:
    from modeltrail.cli import main

    assert main(["db", "grants", "--uri", "mysql+pymysql://root:pw@127.0.0.1/ledger", "--host", "10.0.%"]) == 0
    printed = capsys.readouterr().out
    assert "GRANT SELECT, INSERT ON `ledger`.`audit_events` TO 'modeltrail_writer'@'10.0.%';" in printed
    assert "pw" not in printed
    assert main(["db", "grants", "--database", "x; DROP TABLE models"]) == 2


def test_sync_replays_a_spool_left_by_an_ended_process(sqlite_url: str, tmp_path, capsys) -> None:
    import json
    import subprocess
    import sys
    import textwrap

    import modeltrail
    from modeltrail import _spool as spool
    from modeltrail.cli import main

    modeltrail.Tracker(sqlite_url).close()
    # A process whose database "went away": its writes land in the spool, then it exits.
    script = textwrap.dedent(
        f"""
        import modeltrail
        from modeltrail._errors import StorageUnavailableError
        from modeltrail._writer import writer_for
        tracker = modeltrail.Tracker({sqlite_url!r})
        writer = writer_for(tracker.store)
        writer._go_offline(StorageUnavailableError("simulated outage"))
        writer.spool.append("start", {{"uuid": "u-1", "model": "spooled", "params": {{"lr": [0.1, "0.1"]}},
                                        "started_ts": 1767225600.0, "context": {{}}}})
        writer._next_attempt = float("inf")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, cwd=tmp_path)
    assert spool.pending(sqlite_url) == 1
    assert main(["sync", "--uri", sqlite_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["waiting"] == 0
    assert spool.pending(sqlite_url) == 0
    (record,) = modeltrail.Tracker(sqlite_url).trainings("spooled")
    assert record.params == {"lr": 0.1} and record.status == "running"


@pytest.mark.parametrize("bad", ["-1", "0", "soon", "inf"])
def test_serve_refuses_a_bad_interval_from_the_environment(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    monkeypatch.setenv("MODELTRAIL_SERVE_HEARTBEAT", bad)
    assert main(["serve", "churn", "--env", "staging", "--uri", sqlite_url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeltrail: error: MODELTRAIL_SERVE_HEARTBEAT must be a number of seconds above 0")
    assert repr(bad) in err
