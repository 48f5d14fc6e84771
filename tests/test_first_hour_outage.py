"""Issue 15, items 9 and 10: what a user is told when the database is away, or a training is never finished.

Each test runs the user's side as a real script (its own process, as a user would) and asserts what
they see: the warning's text and the line it points at, ``run.version``, ``modeltrail sync``'s
message and exit code, and the rows that end up in the ledger.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from tests.proxy import Proxy

import modeltrail
from modeltrail.cli import main


def run_script(tmp_path: Path, body: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, "-W", "always", str(script)], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )


@pytest.fixture
def proxied(mysql_url: str) -> Iterator[tuple[str, Proxy]]:
    """``mysql_url`` through a TCP proxy the test can cut, like a network cut or a stopped server."""
    proxy = Proxy("127.0.0.1", make_url(mysql_url).port or 3306)
    yield make_url(mysql_url).set(port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.cut()


OFFLINE_TRAINING = """
    import modeltrail
    tracker = modeltrail.Tracker({url!r})
    with tracker.training("churn", params={{"lr": 0.1}}) as run:
        run.log_metric("loss", 0.5)
    print("version:", run.version)
    print("pending:", isinstance(run.version, modeltrail.PendingVersion), bool(run.version), run.version.number)
"""


def test_item10_a_training_while_the_database_is_away_is_pending_and_sync_says_unreachable_until_it_is_back(
    proxied: tuple[str, Proxy], mysql_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, proxy = proxied
    modeltrail.Tracker(mysql_url).close()  # the schema exists; then the server goes "away"
    proxy.cut()

    done = run_script(tmp_path, OFFLINE_TRAINING.format(url=url))
    assert done.returncode == 0, done.stderr
    # The one warning points at the user's line (train.py, the Tracker call), says the work is spooled and how
    # to replay it; the version says it is pending, not None.
    assert f"{tmp_path / 'train.py'}:3: RuntimeWarning: modeltrail: the database is unreachable" in done.stderr
    assert "spooled to" in done.stderr and "`modeltrail sync`" in done.stderr
    assert "_writer.py" not in done.stderr.split("RuntimeWarning")[0]
    assert "version: version of 'churn' pending" in done.stdout
    assert "pending: True False None" in done.stdout

    # `modeltrail sync` while it is still away: an error naming the database, the entries kept, exit 2.
    code = main(["sync", "--uri", url])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("modeltrail: error: cannot reach the database at ")
    waiting = modeltrail.Tracker.spooled(url)
    assert waiting >= 3  # the training's start, its points and its finish
    assert f"nothing was replayed: {waiting} spooled entries wait in" in err and "once the database is back" in err

    # Back: the same command replays everything, and the pending version exists.
    proxy.restore()
    assert main(["sync", "--uri", url]) == 0
    assert f"replayed {waiting} spooled entries, 0 wait" in capsys.readouterr().out
    tracker = modeltrail.Tracker(mysql_url)
    (training,) = tracker.trainings("churn")
    assert training.version == 1 and training.status == "finished"
    assert [p.value for p in tracker.metric_history(training, "loss")] == [0.5]
    tracker.close()


def test_item9_a_training_never_finished_is_recorded_abandoned_at_exit_with_a_warning_at_the_users_line(
    db_url: str, tmp_path: Path
) -> None:
    done = run_script(
        tmp_path,
        f"""
        import modeltrail
        tracker = modeltrail.Tracker({db_url!r})
        run = tracker.training("churn", params={{"lr": 0.1}})
        run.log_metric("loss", 0.5)
        finished = tracker.training("churn", params={{"lr": 0.2}})
        finished.finish()
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "was still running when the process exited" in done.stderr
    assert "recorded as failed, abandoned" in done.stderr
    assert done.stderr.count("was still running") == 1  # the finished one is not mentioned
    tracker = modeltrail.Tracker(db_url)
    by_lr = {t.params["lr"]: t for t in tracker.trainings("churn")}
    abandoned = tracker.get_training(by_lr[0.1].id)
    assert abandoned.status == "failed" and abandoned.version is None
    assert abandoned.error == "abandoned: the process exited while the training was still running"
    assert [p.value for p in tracker.metric_history(abandoned.id, "loss")] == [0.5]  # what it logged is kept
    assert by_lr[0.2].status == "finished" and by_lr[0.2].version == 1
    tracker.close()


def test_item9_params_that_differ_by_float_noise_are_the_same(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    for lr, depth in ((0.1 + 0.2, 4), (0.3, 8)):
        with tracker.training("m", params={"lr": lr, "depth": depth}):
            pass
    diff = tracker.compare("m", 1, 2).params
    assert diff["changed"] == {"depth": {"old": 4, "new": 8}}  # 0.30000000000000004 → 0.3 is not a change
    assert tracker.versions("m")[1].param_diff["changed"] == {"depth": {"old": 4, "new": 8}}
    with tracker.training("m", params={"lr": 0.3000001, "depth": 8}):
        pass
    assert tracker.compare("m", 2, 3).params["changed"] == {"lr": {"old": 0.3, "new": 0.3000001}}
    tracker.close()


def test_what_the_database_refused_is_still_noted_when_the_trainings_finish_was_spooled(db_url: str) -> None:
    """Review finding: the "not recorded" list used to be forgotten with the training, before the spool replayed."""
    from modeltrail._errors import StorageUnavailableError
    from modeltrail._writer import writer_for

    tracker = modeltrail.Tracker(db_url)
    writer = writer_for(tracker.store)
    with pytest.warns(RuntimeWarning), tracker.training("m", params={"lr": 0.1}) as run:
        run.log_metric("loss", 1.0)
        writer.submit("stage", {"uuid": run.uuid, "stage": {"name": "bad\udc80"}})  # slipped past: refused
        run.flush()

        def unreachable(kind: str, payload: object) -> None:
            writer._next_attempt = float("inf")  # no replay of its own until the test syncs
            raise StorageUnavailableError("cannot reach the database (test: it went away before the finish)")

        writer._apply = unreachable  # type: ignore[method-assign]
    assert isinstance(run.version, modeltrail.PendingVersion)
    del writer._apply  # the database is back
    assert tracker.sync(timeout=60) == 0
    (record,) = modeltrail.Tracker(db_url).trainings("m")
    assert record.status == "finished" and record.version == 1
    (noted,) = record.context["modeltrail_not_recorded"]
    assert noted.startswith("stage") and run.uuid in noted
    tracker.close()
