"""Issue 14, the spool's and the writer's items: nothing refused takes anything else with it.

Each test is named after its item and asserts what a user sees: rows read back after a
replay, files on disk and their modes, warnings, `modeltrail sync` output and exit codes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from tests.proxy import Proxy

import modeltrail
from modeltrail import _spool as spool_mod
from modeltrail._errors import ModeltrailWarning, StorageUnavailableError
from modeltrail._writer import Writer, writer_for
from modeltrail.cli import main

BAD = "bad\udc80"  # what os.fsdecode makes of a non-UTF-8 name: no database can store it

# A process whose database is "away": everything it logs after this goes to its spool, and it
# never replays (as if the server stayed down until it exited). "first" is a training spooled first.
OFFLINE = """
import sys, warnings, modeltrail
from modeltrail._errors import StorageUnavailableError
from modeltrail._writer import writer_for
tracker = modeltrail.Tracker({url!r})
writer = writer_for(tracker.store)
writer._go_offline(StorageUnavailableError("simulated outage"))
writer._next_attempt = float("inf")
writer.spool.append("start", {{"uuid": "first", "model": "first", "params": {{}}, "started_ts": 1767225600.0,
                               "context": {{}}}})
print("spool", writer.spool.path, flush=True)
"""


def offline_process(url: str, body: str, cwd: Path) -> Path:
    """Run ``body`` in a process whose database is away; returns the spool it left."""
    script = textwrap.dedent(OFFLINE.format(url=url)) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.split("spool ", 1)[1].split()[0])


TRAIN = """
with tracker.training("m", params={"lr": 0.1}) as run:
    for i in range(50):
        run.log_metric("loss", 1.0 / (i + 1), step=i)
"""


def sync(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        code = main(["sync", "--uri", url])
    return code, capsys.readouterr().out


def steps(tracker: modeltrail.Tracker, model: str, key: str = "loss") -> list[int]:
    (record,) = tracker.trainings(model)
    return [p.step for p in tracker.metric_history(record, key)]


# ----------------------------------------------------------------------------- item 2
def test_item2_a_refused_point_or_param_takes_no_other_write_with_it(db_url: str) -> None:
    tracker = modeltrail.Tracker(db_url)
    writer = writer_for(tracker.store)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracker.training("m", params={"lr": 0.1}) as run:
            for i in range(200):
                run.log_metric("loss", float(i), step=i)
                if i == 120:  # slipped past the checks at the call: the database refuses it
                    writer.queue.append((run.uuid, BAD, i, 1.0, time.time()))
            writer.submit("params", {"uuid": run.uuid, "params": {"good": [1, "1"], BAD: ["x", "x"]}})
            writer.submit("stage", {"uuid": run.uuid, "stage": {"name": BAD}})  # malformed: refused
            run.log_params({"after": "yes"})
            run.flush()  # never a raw driver error
    refusals = [w for w in caught if issubclass(w.category, ModeltrailWarning)]
    assert len(refusals) == 1 and "not recorded" in str(refusals[0].message)
    assert "3 write(s)" in str(refusals[0].message) and run.uuid in str(refusals[0].message)
    assert writer._thread.is_alive()
    assert len(writer.failures) == 3

    fresh = modeltrail.Tracker(db_url)
    (record,) = fresh.trainings("m")
    assert record.status == "finished" and record.version == 1
    assert steps(fresh, "m") == list(range(200))  # all 200 valid points, none lost with the bad one
    assert record.params == {"lr": 0.1, "good": 1, "after": "yes"}
    assert len(record.context["modeltrail_not_recorded"]) == 3  # the ledger says what is missing


# ----------------------------------------------------------------------------- item 4
def test_item4_a_spool_entry_the_database_refuses_is_set_aside_and_sync_reports_it(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    modeltrail.Tracker(db_url).close()
    body = (
        TRAIN.replace(
            "step=i)\n", "step=i)\n    writer.submit('params', {'uuid': run.uuid, 'params': {BAD: ['x', 'x']}})\n"
        ).replace("with tracker", f"BAD = {BAD!r}\nwith tracker")
        + 'with tracker.training("n") as later:\n    later.log_metric("acc", 0.5, step=0)\n'
    )
    offline_process(db_url, body, tmp_path)
    assert spool_mod.pending(db_url) > 0

    code, out = sync(db_url, capsys)
    letters = spool_mod.spool_dir_for(db_url) / "dead-letters.jsonl"
    assert code == 2 and "1 entry the database refused is set aside in" in out and str(letters) in out
    assert spool_mod.pending(db_url) == 0  # nothing blocked behind the refused entry
    fresh = modeltrail.Tracker(db_url)
    (m,) = fresh.trainings("m")
    assert m.status == "finished" and m.version == 1 and m.params == {"lr": 0.1}
    assert steps(fresh, "m") == list(range(50))
    assert fresh.trainings("n")[0].version == 1
    (letter,) = [json.loads(line) for line in letters.read_text().splitlines()]
    assert letter["kind"] == "params" and letter["training"] == m.uuid and letter["reason"]
    assert letter["payload"]["params"] == {BAD: ["x", "x"]}
    assert stat.S_IMODE(letters.stat().st_mode) == 0o600

    # A later sync has nothing left to do and says so.
    code, out = sync(db_url, capsys)
    assert code == 0 and "replayed 0 spooled entries, 0 wait" in out


def test_item4_an_entry_on_which_the_server_drops_the_connection_is_set_aside(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Like a param over max_allowed_packet: the server hangs up on this entry, yet answers anything else.
    modeltrail.Tracker(sqlite_url).close()
    offline_process(sqlite_url, TRAIN.replace('{"lr": 0.1}', '{"lr": 0.1, "huge": "x" * 1000}'), tmp_path)
    apply = Writer._apply

    def hang_up_on_huge(self: Writer, kind: str, payload: dict[str, object]) -> object:
        if "huge" in json.dumps(payload.get("params", {})):
            raise StorageUnavailableError("MySQL server has gone away (2006)")
        return apply(self, kind, payload)

    monkeypatch.setattr(Writer, "_apply", hang_up_on_huge)
    code, out = sync(sqlite_url, capsys)
    assert code == 2 and "entries the database refused are set aside" in out
    letters = [json.loads(line) for line in (spool_mod.spool_dir_for(sqlite_url) / "dead-letters.jsonl").open()]
    assert letters[0]["kind"] == "start" and "dropped the connection on this entry 3 times" in letters[0]["reason"]
    # The start was set aside, so the training's later entries have no training: they are set aside too,
    # never blocking the spool; the training spooled before it ("first") is in.
    assert spool_mod.pending(sqlite_url) == 0
    assert [t.model for t in modeltrail.Tracker(sqlite_url).trainings()] == ["first"]


# ----------------------------------------------------------------------------- item 5
def test_item5_damaged_spool_files_are_quarantined_and_the_others_replay(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    modeltrail.Tracker(sqlite_url).close()
    good = offline_process(sqlite_url, TRAIN, tmp_path)
    folder = good.parent
    (folder / "1-garbage.spool").write_bytes(os.urandom(8192))
    (folder / "2-empty.spool").write_bytes(b"")
    (folder / "3-truncated.spool").write_bytes(good.read_bytes()[:4096])
    bad_json = folder / "4-badjson.spool"
    shutil.copy(good, bad_json)
    db = sqlite3.connect(bad_json)
    db.execute('UPDATE entries SET payload = \'{"uuid": "broken\' WHERE seq = 1')
    db.commit()
    db.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["sync", "--uri", sqlite_url])
    out = capsys.readouterr().out
    assert code == 2
    for name in ("1-garbage", "2-empty", "3-truncated"):
        damaged = folder / f"{name}.spool.damaged"
        assert damaged.exists() and not (folder / f"{name}.spool").exists()
        assert f"damaged spool set aside (not replayed): {damaged}" in out
        assert any(f"{name}.spool" in str(w.message) and w.category is ModeltrailWarning for w in caught)
    assert "empty: it was truncated" in " ".join(str(w.message) for w in caught)
    # The good spool and the readable rest of the one with a bad entry replayed; nothing waits.
    assert spool_mod.pending(sqlite_url) == 0 and "0 wait" in out
    fresh = modeltrail.Tracker(sqlite_url)
    (m,) = fresh.trainings("m")
    assert m.version == 1 and steps(fresh, "m") == list(range(50))
    letters = (folder / "dead-letters.jsonl").read_text()
    assert "not valid JSON" in letters and "4-badjson.spool" in letters
    assert modeltrail.Tracker.spooled(sqlite_url) == 0  # counting never trips over a damaged file


# ----------------------------------------------------------------------------- item 6
def test_item6_the_spool_folder_is_the_databases_identity_not_the_urls_spelling() -> None:
    same = [
        "mysql+pymysql://root:old@localhost/ledger",
        "mysql+pymysql://app:rotated@127.0.0.1:3306/ledger",
        "mariadb+pymysql://root@[::1]/ledger?charset=utf8mb4",
    ]
    assert len({spool_mod.spool_dir_for(u) for u in same}) == 1
    assert spool_mod.spool_dir_for(same[0]) != spool_mod.spool_dir_for("mysql+pymysql://root@localhost/other")
    assert spool_mod.spool_dir_for(same[0]) != spool_mod.spool_dir_for("mysql+pymysql://root@localhost:3307/ledger")
    pg = ["postgresql+psycopg://u:a@localhost/x", "postgresql://v:b@127.0.0.1:5432/x"]
    assert spool_mod.spool_dir_for(pg[0]) == spool_mod.spool_dir_for(pg[1])
    here = os.getcwd()
    assert spool_mod.spool_dir_for("sqlite:///l.db") == spool_mod.spool_dir_for(f"sqlite:///{here}/./l.db")
    assert "old" not in spool_mod.database_identity(same[0]) and "root" not in spool_mod.database_identity(same[0])


@pytest.fixture
def proxied(mysql_url: str) -> Iterator[tuple[str, Proxy]]:
    """``mysql_url`` through a TCP proxy the test can cut, like a network cut or a server restart."""
    proxy = Proxy("127.0.0.1", make_url(mysql_url).port or 3306)
    yield make_url(mysql_url).set(port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.cut()


def test_item6_a_spool_written_under_one_spelling_and_password_is_synced_under_another(
    proxied: tuple[str, Proxy], mysql_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, proxy = proxied
    modeltrail.Tracker(mysql_url).close()
    proxy.cut()
    written = make_url(url).set(host="127.0.0.1", password="the-old-one").render_as_string(hide_password=False)
    script = f"import modeltrail\ntracker = modeltrail.Tracker({written!r})\n" + textwrap.dedent(TRAIN)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and "spool" in done.stderr, done.stderr
    proxy.restore()
    synced = make_url(url).set(host="localhost").render_as_string(hide_password=False)  # no password now
    code, out = sync(synced, capsys)
    assert code == 0 and "0 wait" in out, out
    fresh = modeltrail.Tracker(mysql_url)
    assert fresh.trainings("m")[0].version == 1 and steps(fresh, "m") == list(range(50))


def test_item6_spools_under_the_old_url_hash_folder_are_still_replayed(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    modeltrail.Tracker(sqlite_url).close()
    spool = offline_process(sqlite_url, TRAIN, tmp_path)
    legacy = spool_mod.spool_root() / hashlib.sha256(sqlite_url.encode()).hexdigest()[:16]
    spool.parent.rename(legacy)  # where modeltrail before issue 14 kept it
    assert modeltrail.Tracker.spooled(sqlite_url) > 0
    code, out = sync(sqlite_url, capsys)
    assert code == 0 and "0 wait" in out
    fresh = modeltrail.Tracker(sqlite_url)
    assert fresh.trainings("m")[0].version == 1 and steps(fresh, "m") == list(range(50))


# ----------------------------------------------------------------------------- item 7
def test_item7_a_forked_child_exiting_leaves_the_parents_spool_alone(sqlite_url: str, tmp_path: Path) -> None:
    modeltrail.Tracker(sqlite_url).close()
    probe = (
        "import filelock,sys\ntry:\n filelock.FileLock(sys.argv[1]).acquire(timeout=0.2); print('free')\n"
        "except filelock.Timeout: print('held')"
    )
    body = f"""
    import atexit, os, subprocess
    spool = writer.spool
    atexit.register(spool.close)  # what the child inherits, like the writer's own exit handler
    spool.ack(1)  # drained: an empty spool is the one close() deletes
    pid = os.fork()
    if pid == 0:
        sys.exit(0)  # a normal exit: the inherited handlers run
    os.waitpid(pid, 0)
    assert spool.path.exists(), "the child deleted the parent's spool"
    lock = str(spool.path.with_suffix(".lock"))
    held = subprocess.run([sys.executable, "-c", {probe!r}, lock], capture_output=True, text=True).stdout
    assert held.strip() == "held", held
    spool.append("start", {{"uuid": "after", "model": "after-fork", "params": {{}}, "started_ts": 1767225601.0,
                             "context": {{}}}})
    """
    offline_process(sqlite_url, body, tmp_path)
    assert spool_mod.pending(sqlite_url) == 1  # what the parent spooled after the fork is on disk
    assert modeltrail.Tracker.replay_spool(sqlite_url).waiting == 0
    assert [t.model for t in modeltrail.Tracker(sqlite_url).trainings()] == ["after-fork"]


# ----------------------------------------------------------------------------- item 10
def test_item10_an_unwritable_spool_folder_keeps_the_outage_in_memory_until_the_database_is_back(
    proxied: tuple[str, Proxy], mysql_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, proxy = proxied
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder should be")
    monkeypatch.setenv("MODELTRAIL_SPOOL_DIR", str(blocker / "spool"))
    tracker = modeltrail.Tracker(url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracker.training("outage", params={"lr": 0.1}) as run:
            for step in range(300):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.flush()
            proxy.cut()
            for step in range(300, 600):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.log_params({"late": "yes"})
    said = [w for w in caught if w.category is ModeltrailWarning]
    assert len(said) == 1 and str(blocker / "spool") in str(said[0].message) and "memory" in str(said[0].message)
    assert run.status == "finished" and isinstance(run.version, modeltrail.PendingVersion)

    proxy.restore()
    assert tracker.sync(timeout=60) == 0
    fresh = modeltrail.Tracker(mysql_url)
    (record,) = fresh.trainings("outage")
    assert record.status == "finished" and record.version == 1 and record.params == {"lr": 0.1, "late": "yes"}
    assert steps(fresh, "outage") == list(range(600))


# ----------------------------------------------------------------------------- item 16
def test_item16_spool_files_are_0600_in_a_0700_folder(sqlite_url: str, tmp_path: Path) -> None:
    modeltrail.Tracker(sqlite_url).close()
    old = os.umask(0o022)
    try:
        spool = offline_process(sqlite_url, TRAIN, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(spool.parent.stat().st_mode) == 0o700
    files = list(spool.parent.iterdir())
    assert spool in files and spool.with_suffix(".lock") in files
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}


# ----------------------------------------------------------------------------- smaller
def test_concurrent_sync_says_another_sync_holds_the_spool(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    modeltrail.Tracker(sqlite_url).close()
    offline_process(sqlite_url, TRAIN, tmp_path)
    waiting = modeltrail.Tracker.spooled(sqlite_url)
    holder = subprocess.Popen(  # a sync that has taken the spool and is replaying it
        [
            sys.executable,
            "-c",
            f"import sys, time\nfrom modeltrail import _spool\nwith _spool.orphans({sqlite_url!r}) as found:\n"
            "    print(len(found), flush=True)\n    sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "1"
        code, out = sync(sqlite_url, capsys)
    finally:
        holder.communicate("\n", timeout=60)
    assert code == 2
    assert "another `modeltrail sync`" in out and f"replaying {waiting} entries now" in out
    code, out = sync(sqlite_url, capsys)  # once it is done, a sync replays it
    assert code == 0 and f"replayed {waiting} spooled entries, 0 wait" in out


def test_sync_says_which_entries_belong_to_a_training_still_running(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    modeltrail.Tracker(sqlite_url).close()
    script = (
        f"import sys\nfrom modeltrail import _spool\nspool = _spool.Spool.create({sqlite_url!r})\n"
        "spool.append('start', {'uuid': 'live'})\nprint('ready', flush=True)\nsys.stdin.readline()"
    )
    live = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert live.stdout is not None and live.stdout.readline().strip() == "ready"
        code, out = sync(sqlite_url, capsys)
    finally:
        live.communicate("\n", timeout=60)
    assert code == 2 and "1 wait" in out and "1 of them belongs to a modeltrail process still running" in out
    assert "another `modeltrail sync`" not in out


def test_replay_spool_in_the_process_that_spooled_replays_its_live_spool(
    proxied: tuple[str, Proxy], mysql_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Tracker.replay_spool` called where a Tracker spooled an outage replays that live spool (not 'waiting')."""
    url, proxy = proxied
    monkeypatch.setenv("MODELTRAIL_SPOOL_DIR", str(tmp_path / "spool"))
    tracker = modeltrail.Tracker(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tracker.training("live-spool") as run:
            run.log_metric("loss", 1.0, step=0)
            run.flush()
            proxy.cut()
            for step in range(1, 50):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
    assert spool_mod.pending(url) > 0
    proxy.restore()
    replay = modeltrail.Tracker.replay_spool(url, timeout=60)
    assert (replay.waiting, spool_mod.pending(url)) == (0, 0)
    assert steps(modeltrail.Tracker(mysql_url), "live-spool") == list(range(50))
    tracker.close()
