"""Issue 15, the first hour of a new user: items 4 (the CLI after `make demo`, missing extras), 5 (the demo's
story and what it leaves behind), 7 (plots that show every version) and parts of 9 (compare's float noise,
plurals, dashboard model pages by name, `evaluate` in the README)."""

from __future__ import annotations

import importlib.abc
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import modeltrail
from modeltrail import ConfigurationError
from modeltrail.cli import main
from modeltrail.cli.output import count

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    """The command's failure as users see it: exit 2 and a single ``modeltrail: error: ...`` line."""
    assert code == 2 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith("modeltrail: error: "), line
    return line


class Missing(importlib.abc.MetaPathFinder):
    """Makes ``names`` (and their submodules) import as if they were not installed."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = set(names)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Uninstall ``names`` for the rest of the test (sys.modules and the import system; restored after)."""
    for key in list(sys.modules):
        if key.partition(".")[0] in names:
            monkeypatch.delitem(sys.modules, key)
    monkeypatch.setattr(sys, "meta_path", [Missing(names), *sys.meta_path])


def train(tracker: modeltrail.Tracker, model: str, params: dict[str, Any], points: dict[str, list[float]]) -> None:
    with tracker.training(model, params=params) as run_:
        for key, values in points.items():
            for step, value in enumerate(values):
                run_.log_metric(key, value, step=step)


# ------------------------------------------------------------------ item 4
def test_item4_the_readme_says_where_the_command_is_and_keeps_two_set_up_commands() -> None:
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    block = setup.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make demo", "make test"]
    assert ". .venv/bin/activate" in setup and ".venv/bin/modeltrail" in setup


def test_item4_plot_without_matplotlib_is_one_line_naming_the_extra(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    train(tracker, "churn-rf", {"depth": 4}, {"val_accuracy": [0.8]})
    tracker.close()
    hide(monkeypatch, "matplotlib")
    code, _, err = run(capsys, "--uri", sqlite_url, "plot", "churn-rf", "--metric", "val_accuracy", "-o", "c.png")
    line = one_line_error(code, err)
    assert 'pip install "modeltrail[plot]"' in line and not (tmp_path / "c.png").exists()


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("mysql+pymysql://trainer:s3cret@127.0.0.1:1/ledger", "pymysql", "mysql"),
        ("postgresql+psycopg://trainer:s3cret@127.0.0.1:1/ledger", "psycopg", "postgres"),
    ],
)
def test_item4_a_server_url_without_its_driver_names_the_extra(
    url: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hide(monkeypatch, module)
    hint = f'pip install "modeltrail[{extra}]"'
    with pytest.raises(ConfigurationError) as caught:
        modeltrail.Tracker(url)
    assert f"No module named '{module}'" in str(caught.value) and hint in str(caught.value)
    assert "s3cret" not in str(caught.value)
    for argv in (["--uri", url, "models"], ["--uri", url, "db", "current"]):
        line = one_line_error(*run(capsys, *argv)[::2])
        assert f"No module named '{module}'" in line and hint in line and "s3cret" not in line


# ------------------------------------------------------------------ item 5
def test_item5_the_demo_leaves_nothing_git_would_list(tmp_path: Path) -> None:
    """Run as `make demo` runs it (./modeltrail.db in the checkout): every file it leaves is ignored."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    env = {k: v for k, v in os.environ.items() if k != "MODELTRAIL_URI"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "modeltrail.db").exists() and (tmp_path / "modeltrail.schema-lock").exists()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path, text=True,
                            capture_output=True, check=True).stdout  # fmt: skip
    assert status.splitlines() == ["?? .gitignore"], status
    # The commands it suggests work on what it left (the dashboard through its app).
    suggested = re.findall(r"^  (modeltrail [^#\n]*?)\s*(?:#.*)?$", done.stdout, flags=re.MULTILINE)
    assert suggested == [
        "modeltrail show churn-rf",
        "modeltrail ui",
        "modeltrail leaderboard churn-rf --metric val_auc",
        "modeltrail serve churn-rf --env staging",  # started for real over HTTP in tests/test_serving.py
    ]
    for command in (suggested[0], suggested[2]):
        answer = subprocess.run(
            [sys.executable, "-m", "modeltrail.cli", *command.split()[1:]], cwd=tmp_path, env=env,
            capture_output=True, text=True,
        )  # fmt: skip
        assert answer.returncode == 0 and "churn-rf" in answer.stdout + command, answer.stderr
    from fastapi.testclient import TestClient

    from modeltrail.ui import app as ui_app

    with TestClient(ui_app.create_app(f"sqlite:///{tmp_path / 'modeltrail.db'}")) as client:
        assert "churn-rf" in client.get("/").text and client.get("/models/churn-rf").status_code == 200


# ------------------------------------------------------------------ item 7
def visible_ticks(ax: Any) -> list[str]:
    """The x tick labels a reader sees (a locator also places ticks outside the axis)."""
    lo, hi = ax.get_xlim()
    return [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]


def _drawn(figure: Any) -> Any:
    figure.canvas.draw()
    (ax,) = [a for a in figure.axes if a.get_label() != "<colorbar>"]
    return ax


def test_item7_one_point_per_version_is_drawn_with_markers_on_whole_ticks(sqlite_url: str, tmp_path: Path) -> None:
    from modeltrail import _plots

    tracker = modeltrail.Tracker(sqlite_url)
    for depth, accuracy in ((4, 0.79), (8, 0.87)):
        train(tracker, "churn-rf", {"depth": depth}, {"val_accuracy": [accuracy]})
    out = tracker.plot("churn-rf", "val_accuracy", tmp_path / "acc.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = _drawn(_plots.curves_figure(tracker.metric_curves("churn-rf", "val_accuracy"), metric="val_accuracy"))
    assert all(line.get_marker() not in (None, "", "None") for line in ax.get_lines())
    assert visible_ticks(ax) == ["0"]  # one step, one tick: never -0.04 ... 0.04

    out = tracker.plot("churn-rf", "val_accuracy", tmp_path / "across.png", across_versions=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = tracker.metric_by_version("churn-rf", "val_accuracy")
    ax = _drawn(_plots.across_versions_figure(rows, metric="val_accuracy"))
    assert visible_ticks(ax) == ["1", "2"]
    assert all(line.get_marker() not in (None, "", "None") for line in ax.get_lines())
    # final and best are one value here: one line that says so, not one hiding the other
    assert [line.get_label() for line in ax.get_lines()] == ["final = best (max)"]


def test_item7_many_versions_get_integer_ticks_and_identical_curves_say_so(sqlite_url: str, tmp_path: Path) -> None:
    from modeltrail import _plots

    tracker = modeltrail.Tracker(sqlite_url)
    curves = [[0.80, 0.84, 0.86], [0.90, 0.93, 0.94], [0.90, 0.93, 0.94]]
    for i, values in enumerate(curves):
        train(tracker, "same", {"i": i}, {"val_auc": values})
    ax = _drawn(_plots.curves_figure(tracker.metric_curves("same", "val_auc"), metric="val_auc"))
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["v1", "v2", "v3 (same as v2)"]
    assert len({(line.get_linestyle(), line.get_marker()) for line in lines}) == 3  # each version drawn apart
    assert lines[2].get_markerfacecolor() == "none"  # hollow on top of v2, so both show
    assert all(label.isdigit() for label in visible_ticks(ax))
    assert tracker.plot("same", "val_auc", tmp_path / "same.png").stat().st_size > 0

    for i in range(3, 30):  # past the per-version ticks: spaced integer ticks, never 2.5
        train(tracker, "same", {"i": i}, {"val_auc": [0.5 + i / 100]})
    ax = _drawn(_plots.across_versions_figure(tracker.metric_by_version("same", "val_auc"), metric="val_auc"))
    labels = visible_ticks(ax)
    assert labels and all(re.fullmatch(r"[1-9]\d*", label) for label in labels), labels  # no version 0


# ------------------------------------------------------------------ item 9
def test_item9_compare_calls_float_noise_the_same(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = modeltrail.Tracker(db_url)
    train(tracker, "noise", {"depth": 4}, {"val_auc": [0.1 + 0.2], "loss": [0.5]})
    train(tracker, "noise", {"depth": 8}, {"val_auc": [0.3], "loss": [0.25]})
    tracker.evaluate("noise", version=1, dataset="test", metrics={"auc": 0.7 + 0.1})
    tracker.evaluate("noise", version=2, dataset="test", metrics={"auc": 0.8})
    c = tracker.compare("noise", 1, 2)
    deltas = {m.key: (m.last_delta, m.best_delta) for m in c.metrics}
    assert deltas == {"val_auc": (0.0, 0.0), "loss": (-0.25, -0.25)}
    assert [e.delta for e in c.evaluations] == [0.0]
    monkeypatch.setenv("MODELTRAIL_URI", db_url)
    code, out, _ = run(capsys, "compare", "noise", "1", "2")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("  val_auc", "  loss"))}
    assert code == 0 and rows["val_auc"][4] == "same" and rows["val_auc"][7] == "same", out
    assert "1.11022e-16" not in out and "-0.25" in rows["loss"]
    assert re.search(r"test\s+auc\s+max\s+0\.8\s+0\.8\s+same", out), out


def test_item9_counts_agree_with_their_nouns(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert (count(1, "version"), count(2, "version"), count(0, "version")) == ("1 version", "2 versions", "0 versions")
    assert count(1, "entry", "entries") == "1 entry" and count(3, "entry", "entries") == "3 entries"
    tracker = modeltrail.Tracker(sqlite_url)
    train(tracker, "churn-rf", {"depth": 4}, {"val_auc": [0.9]})
    tracker.close()
    code, out, _ = run(capsys, "--uri", sqlite_url, "export", "churn-rf", "-o", str(tmp_path / "one.jsonl"))
    assert code == 0 and "exported 1 version of churn-rf" in out, out
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, out, _ = run(capsys, "--uri", other, "import", str(tmp_path / "one.jsonl"))
    assert code == 0 and "imported 1 version (churn-rf v1)" in out, out
    # No count in the command's sources is printed beside a plural noun it does not agree with.
    sources = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "src" / "modeltrail" / "cli").glob("*.py"))
    assert not re.findall(r"\{len\([^)]*\)\} [a-z]+s\b", sources)


def test_item9_dashboard_model_pages_by_name_or_id(db_url: str) -> None:
    from fastapi.testclient import TestClient

    from modeltrail.ui import app as ui_app

    tracker = modeltrail.Tracker(db_url)
    for depth in (4, 8):
        train(tracker, "churn-rf", {"depth": depth}, {"val_auc": [0.8, 0.9]})
    first_id = tracker.model("churn-rf").id
    train(tracker, str(first_id), {"depth": 1}, {"val_auc": [0.5]})  # a model whose name is another's id
    train(tracker, "90210", {"depth": 1}, {"val_auc": [0.6]})  # digits that are no model's id
    digits_id, zip_id = tracker.model(str(first_id)).id, tracker.model("90210").id
    assert 90210 not in {first_id, digits_id, zip_id}
    with TestClient(ui_app.create_app(db_url)) as client:
        for path in ("/models/churn-rf", f"/models/{first_id}"):
            page = client.get(path)
            assert page.status_code == 200 and "churn-rf" in page.text, path
            assert client.get(f"{path}/compare").status_code == 200
            assert client.get(f"{path}/charts?metric=val_auc").status_code == 200
        assert client.get("/api/models/churn-rf").json()["model"]["id"] == first_id
        # All digits: an id first (the model named like it is reached by its own id), else a name.
        assert client.get(f"/api/models/{first_id}").json()["model"]["name"] == "churn-rf"
        assert client.get(f"/api/models/{digits_id}").json()["model"]["name"] == str(first_id)
        assert client.get("/api/models/90210/versions").json()[0]["number"] == 1
        assert "90210" in client.get("/models/90210").text
        assert client.get("/models/no-such-model").status_code == 404
        assert client.get("/api/models/no-such-model/versions").status_code == 404


def test_item9_the_readme_lists_evaluate() -> None:
    commands = README.split("never prints a password:", 1)[1].split("\n\n", 2)[1]
    assert "modeltrail evaluate churn-rf 4 --dataset" in commands
