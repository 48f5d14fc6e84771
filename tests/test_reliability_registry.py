"""Issue 14, registry correctness: re-import changes nothing (item 11), a lost commit acknowledgement
never makes a retry take a second step (item 12), spooled work keeps its own finish time (item 13).

Every test runs on SQLite, MariaDB and PostgreSQL and reads back what another client sees.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import make_url
from tests.conftest import make_db_url
from tests.proxy import Proxy

import modeltrail
from modeltrail import ConflictError, StorageUnavailableError, ValidationError
from modeltrail import _schema as schema
from modeltrail._exchange.export import dumps
from modeltrail._store import Store
from modeltrail._writer import writer_for
from modeltrail.cli import deployments as cli_deployments
from modeltrail.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


# ------------------------------------------------------------------ helpers
@pytest.fixture
def second_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger on ``db_url``'s backend (the import's target)."""
    backend = next(b for p, b in (("sqlite", "sqlite"), ("mysql", "mysql"), ("postgres", "postgres")) if p in db_url)
    (tmp_path / "second").mkdir()
    yield from make_db_url(backend, tmp_path / "second")


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows as another client sees them: a fresh engine, committed data only."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table, by primary key: equal snapshots mean nothing changed."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
                for table in schema.Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def timeline(url: str, environment: str = "prod") -> list[tuple[int, str, str]]:
    """(version, action, status) of each entry of ``environment``, oldest first."""
    return query(
        url,
        "SELECT v.number, d.action, d.status FROM deployments d JOIN versions v ON v.id = d.version_id "
        f"WHERE d.environment = '{environment}' ORDER BY d.id",
    )


def active_per_environment(url: str) -> dict[str, int]:
    rows = query(url, "SELECT environment, COUNT(*) FROM deployments WHERE status = 'active' GROUP BY environment")
    return {env: int(n) for env, n in rows}


def train(tracker: modeltrail.Tracker, n: int, model: str = "m") -> None:
    for i in range(n):
        with tracker.training(model, params={"i": i}) as run:
            run.log_metric("acc", 0.5 + i / 10)


def deployment_commits(store: Store) -> Callable[[Any], bool]:
    """Watch ``store``'s connections: the returned test says (once) whether a connection's transaction,
    about to commit or committing, wrote a deployment row."""
    wrote: set[int] = set()

    def after_cursor_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DEPLOYMENTS"):
            wrote.add(id(conn.connection))

    def wrote_one(pooled_connection: Any) -> bool:
        if id(pooled_connection) not in wrote:
            return False
        wrote.discard(id(pooled_connection))
        return True

    event.listen(store.engine, "after_cursor_execute", after_cursor_execute)
    return wrote_one


def three_deployed(url: str) -> modeltrail.Tracker:
    """Model ``m`` with versions 1, 2 and 3, deployed to ``prod`` in that order (3 serves)."""
    tracker = modeltrail.Tracker(url)
    train(tracker, 3)
    for n in (1, 2, 3):
        tracker.deploy("m", n, "prod")
    return tracker


def lose_next_deployment_ack(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The next commit that wrote a deployment succeeds on the server, then the client loses the answer.

    On MariaDB and PostgreSQL the driver raises the error a connection dropped during COMMIT gives
    (it goes through SQLAlchemy and modeltrail's translation to StorageUnavailableError); SQLite has
    no connection to lose, so the error modeltrail raises for one is raised instead. Returns a list
    that holds one entry once the acknowledgement was lost. (The wire itself is cut in
    :func:`test_item12_a_commit_answer_lost_on_the_wire_then_the_cli_retry_rolls_back_once`.)
    """
    wrote_one = deployment_commits(store)

    def disconnect() -> BaseException:
        if store.dialect == "mysql":
            import pymysql

            return pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
        if store.dialect == "postgresql":
            import psycopg

            return psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")
        return StorageUnavailableError(f"cannot reach the database at {store.display_uri}: connection lost")

    lost: list[str] = []
    dialect = store.engine.dialect
    real_commit = dialect.do_commit

    def do_commit(pooled_connection: Any) -> None:
        real_commit(pooled_connection)
        if wrote_one(pooled_connection) and not lost:
            lost.append("lost")
            raise disconnect()

    monkeypatch.setattr(dialect, "do_commit", do_commit)
    return lost


class AnswerDropper(Proxy):
    """A TCP proxy that, once armed, lets the client's next request reach the server and drops the
    server's answer to it, closing the connection: a commit acknowledgement lost on the wire."""

    def __init__(self, host: str, port: int) -> None:
        self.armed = threading.Event()
        self.dropped = 0
        super().__init__(host, port)

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        from_server = src.getpeername()[1] == self.target[1]
        super()._pipe(_Answers(src, self) if from_server else src, dst, counted)  # type: ignore[arg-type]


class _Answers:
    """The server side of a proxied connection whose next answer, once armed, ends it unsent."""

    def __init__(self, sock: socket.socket, proxy: AnswerDropper) -> None:
        self.sock, self.proxy = sock, proxy

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        if data and self.proxy.armed.is_set():
            self.proxy.armed.clear()
            self.proxy.dropped += 1
            return b""  # the server has answered (committed); the client never hears it
        return data

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)


# ------------------------------------------------------------------ item 11
def test_item11_importing_the_same_export_twice_changes_nothing(
    db_url: str, second_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = modeltrail.Tracker(db_url)
    train(source, 3)
    source.deploy("m", 1, "prod")
    source.deploy("m", 2, "prod")  # v1 superseded
    source.rollback("m", "prod")  # v2 rolled back, v1 serves again
    source.deploy("m", 3, "prod")
    source.deploy("m", 2, "staging")
    source.undeploy("m", "staging")
    source.deploy("m", 1, "canary")
    source.log_production_metrics("m", "prod", {"auc": 0.81})
    docs = source.export("m")
    path = tmp_path / "m.jsonl"
    path.write_text("".join(dumps(d) + "\n" for d in docs))

    target = modeltrail.Tracker(second_url)
    assert target.import_documents(docs)["imported"] == [["m", 1], ["m", 2], ["m", 3]]
    expected_prod = [
        (1, "deploy", "superseded"),
        (2, "deploy", "rolled_back"),
        (1, "rollback", "superseded"),
        (3, "deploy", "active"),
    ]
    assert timeline(second_url) == timeline(db_url) == expected_prod
    assert timeline(second_url, "staging") == [(2, "deploy", "retired"), (2, "undeploy", "retired")]
    assert active_per_environment(second_url) == {"prod": 1, "canary": 1}
    first = snapshot(second_url)

    again = target.import_documents(docs)  # the same export again, through the API
    assert (again["imported"], again["skipped"]) == ([], [["m", 1], ["m", 2], ["m", 3]])
    assert snapshot(second_url) == first  # every row of every table, audit events included
    assert main(["--uri", second_url, "import", str(path)]) == 0  # and through the command
    assert "imported 0 versions" in capsys.readouterr().out
    assert snapshot(second_url) == first
    assert len(target.audit(action="ledger.import")) == 1

    # The target's own timeline moves on; the same export imported once more must not reopen
    # what it superseded (it used to turn v3 back to active: two active deployments in prod).
    target.deploy("m", 2, "prod", reason="target's own")
    target.undeploy("m", "canary")
    moved = snapshot(second_url)
    target.import_documents(docs)
    assert main(["--uri", second_url, "import", str(path)]) == 0
    assert snapshot(second_url) == moved
    assert timeline(second_url)[-2:] == [(3, "deploy", "superseded"), (2, "deploy", "active")]
    assert active_per_environment(second_url) == {"prod": 1}
    assert target.deployment("m", "prod").version == 2  # type: ignore[union-attr]
    assert target.deployment("m", "canary") is None

    # A later export where an active deployment has since ended in the source moves it forward
    # (active -> superseded), with one audit event naming it.
    third = modeltrail.Tracker(f"sqlite:///{tmp_path / 'third.db'}")
    third.import_documents(docs)
    source.deploy("m", 2, "canary")
    third.import_documents(source.export("m"))
    assert [(d.version, d.status) for d in third.deployments("m", environment="canary")] == [
        (1, "superseded"),
        (2, "active"),
    ]
    latest = third.audit(action="ledger.import")[0]
    assert latest.after["deployments_added"] == 1 and len(latest.after["deployments_ended"]) == 1


# ------------------------------------------------------------------ item 12
def test_item12_a_lost_rollback_ack_then_the_retry_rolls_back_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = three_deployed(db_url)
    lost = lose_next_deployment_ack(tracker.store, monkeypatch)
    with pytest.raises(StorageUnavailableError):
        tracker.rollback("m", "prod", reason="latency", expect_version=3, request_id="rollback-7")
    assert lost == ["lost"]
    # The server committed it: another client sees version 2 serving.
    after_first = [(1, "deploy", "superseded"), (2, "deploy", "superseded"), (3, "deploy", "rolled_back")]
    after_first.append((2, "rollback", "active"))
    assert timeline(db_url) == after_first
    committed_id = query(db_url, "SELECT MAX(id) FROM deployments")[0][0]

    # The obvious retry, same request: answered as the success it was, no second step.
    retry = tracker.rollback("m", "prod", reason="latency", expect_version=3, request_id="rollback-7")
    assert (retry.id, retry.version, retry.action, retry.status) == (committed_id, 2, "rollback", "active")
    assert timeline(db_url) == after_first
    (event,) = tracker.audit(action="deployment.rollback")
    assert event.after["request_id"] == "rollback-7" and event.entity_id == str(committed_id)
    unchanged = snapshot(db_url)

    # Without the request id the precondition alone refuses the second step.
    with pytest.raises(ConflictError, match=r"'prod' serves version 2 of 'm', not version 3 as expected"):
        tracker.rollback("m", "prod", expect_version=3)
    # A request id is one change: reusing it for another is refused, not silently answered.
    with pytest.raises(ConflictError, match=r"request id 'rollback-7' already made another change"):
        tracker.deploy("m", 1, "prod", request_id="rollback-7")
    assert snapshot(db_url) == unchanged
    # What the guards prevent: an unguarded retry walks back a second step (to version 1).
    assert tracker.rollback("m", "prod").version == 1


def test_item12_deploy_and_undeploy_retries_after_a_lost_ack_change_nothing_more(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = modeltrail.Tracker(db_url)
    train(tracker, 2)
    tracker.deploy("m", 1, "prod")
    lose_next_deployment_ack(tracker.store, monkeypatch)
    with pytest.raises(StorageUnavailableError):
        tracker.deploy("m", 2, "prod", expect_version=1, request_id="d-1")
    deployed = tracker.deploy("m", 2, "prod", expect_version=1, request_id="d-1")
    assert timeline(db_url) == [(1, "deploy", "superseded"), (2, "deploy", "active")]
    assert deployed.version == 2 and deployed.status == "active"
    with pytest.raises(ConflictError, match="already made another change"):  # same key, another version
        tracker.deploy("m", 1, "prod", request_id="d-1")

    lost = lose_next_deployment_ack(tracker.store, monkeypatch)
    with pytest.raises(StorageUnavailableError):
        tracker.undeploy("m", "prod", expect_version=2, request_id="u-1")
    assert lost == ["lost"]
    retired = tracker.undeploy("m", "prod", expect_version=2, request_id="u-1")
    assert (retired.action, retired.version) == ("undeploy", 2)
    assert timeline(db_url) == [(1, "deploy", "superseded"), (2, "deploy", "retired"), (2, "undeploy", "retired")]
    assert active_per_environment(db_url) == {}
    assert len(tracker.audit(action="deployment.*")) == 3

    # Bad guards are refused at the call, before any SQL.
    for bad in (0, True, "2", 1.5):
        with pytest.raises(ValidationError, match="expect_version must be a version number"):
            tracker.deploy("m", 1, "prod", expect_version=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="request_id"):
        tracker.rollback("m", "prod", request_id="x" * 129)
    with pytest.raises(ConflictError, match="serves no 'm', not version 2"):
        tracker.deploy("m", 1, "prod", expect_version=2)
    assert len(tracker.audit(action="deployment.*")) == 3


def test_item12_the_cli_retries_a_lost_ack_with_the_version_it_saw_and_rolls_back_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker = three_deployed(db_url)
    monkeypatch.setattr(cli_deployments, "RETRY_DELAY_S", 0.01)
    ledger = modeltrail.Tracker.open_ledger(db_url, hint="")  # the store the command will use
    lost = lose_next_deployment_ack(ledger.store, monkeypatch)
    assert main(["--uri", db_url, "rollback", "m", "--env", "prod", "--reason", "latency"]) == 0
    assert lost == ["lost"]  # the first try committed, its answer was lost, the command retried
    out = capsys.readouterr().out
    rollback_id = query(db_url, "SELECT MAX(id) FROM deployments")[0][0]
    assert f"now deployment {rollback_id}: m version 2 in prod" in out
    once = [(1, "deploy", "superseded"), (2, "deploy", "superseded"), (3, "deploy", "rolled_back")]
    once.append((2, "rollback", "active"))
    assert timeline(db_url) == once
    (event,) = tracker.audit(action="deployment.rollback")
    assert event.after["request_id"]  # the command made one and sent it on both tries

    # --expect-version: refused, exit 2, nothing changed.
    before = snapshot(db_url)
    assert main(["--uri", db_url, "rollback", "m", "--env", "prod", "--expect-version", "3"]) == 2
    err = capsys.readouterr().err
    assert "modeltrail: error: 'prod' serves version 2 of 'm', not version 3 as expected" in err
    assert snapshot(db_url) == before
    # --request-id: the whole command run again (a CI job retried) makes no second change.
    deploy = ["--uri", db_url, "deploy", "m", "3", "--env", "prod", "--request-id", "ci-job-41"]
    assert main(deploy) == 0 and main(deploy) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0] == lines[1] and "m version 3 in prod" in lines[0]
    assert timeline(db_url)[len(once) :] == [(3, "deploy", "active")]

    # An undeploy whose answer is lost: retried, retired once.
    lose_next_deployment_ack(ledger.store, monkeypatch)
    assert main(["--uri", db_url, "--json", "undeploy", "m", "--env", "prod"]) == 0
    assert '"action": "undeploy"' in capsys.readouterr().out
    assert timeline(db_url)[len(once) :] == [(3, "deploy", "retired"), (3, "undeploy", "retired")]
    assert active_per_environment(db_url) == {}


def test_item12_a_commit_answer_lost_on_the_wire_then_the_cli_retry_rolls_back_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite has no wire: the other item 12 tests inject the error a lost answer gives")
    url = make_url(db_url)
    proxy = AnswerDropper(url.host or "127.0.0.1", int(url.port or 0))
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        tracker = three_deployed(db_url)
        monkeypatch.setattr(cli_deployments, "RETRY_DELAY_S", 0.01)
        ledger = modeltrail.Tracker.open_ledger(proxied, hint="")  # the store the command will use
        wrote_one = deployment_commits(ledger.store)

        # Armed as the COMMIT of the rollback goes out: the server commits, its answer is dropped.
        def arm(conn: Any) -> None:
            if wrote_one(conn.connection):
                proxy.armed.set()

        event.listen(ledger.store.engine, "commit", arm)
        assert main(["--uri", proxied, "rollback", "m", "--env", "prod"]) == 0, capsys.readouterr().err
        assert proxy.dropped == 1
        assert "m version 2 in prod" in capsys.readouterr().out
        assert timeline(db_url) == [
            (1, "deploy", "superseded"),
            (2, "deploy", "superseded"),
            (3, "deploy", "rolled_back"),
            (2, "rollback", "active"),
        ]
        assert len(tracker.audit(action="deployment.rollback")) == 1
    finally:
        proxy.cut()


# ------------------------------------------------------------------ item 13
def test_item13_a_spooled_training_keeps_its_finish_time_and_is_numbered_when_it_arrives(
    db_url: str, tmp_path: Path
) -> None:
    tracker = modeltrail.Tracker(db_url)
    writer = writer_for(tracker.store)
    finishes: list[dict[str, Any]] = []

    def unreachable(kind: str, payload: dict[str, Any]) -> Any:
        raise StorageUnavailableError("cannot reach the database (test: the writer is offline)")

    def submit(kind: str, payload: dict[str, Any]) -> Any:  # sees the finish the client hands to the spool
        if kind == "finish":
            finishes.append(payload)
        return type(writer).submit(writer, kind, payload)

    writer.submit = submit  # type: ignore[method-assign]
    before_finish = dt.datetime.now(dt.timezone.utc)
    with pytest.warns(RuntimeWarning, match="spool"), tracker.training("m", params={"lr": 0.1}) as early:
        early.log_metric("acc", 0.7)
        writer._apply = unreachable  # type: ignore[method-assign]  # the database goes away before the finish
    after_finish = dt.datetime.now(dt.timezone.utc)
    writer._next_attempt = float("inf")  # no replay attempt of its own while the other process runs (slow when loaded)
    assert early.status == "finished" and isinstance(early.version, modeltrail.PendingVersion) and not early.version
    (finish,) = finishes
    finished_at = schema.from_timestamp(finish["ended_ts"])  # the finish time the client recorded

    # Meanwhile another process finishes a later training online: it reaches the ledger first.
    script = textwrap.dedent(
        f"""
        import modeltrail
        with modeltrail.Tracker({db_url!r}).training("m", params={{"lr": 0.2}}) as run:
            run.log_metric("acc", 0.9)
        print(run.version.number)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]

    del writer._apply, writer.submit  # the database is back: replay
    replayed_at = dt.datetime.now(dt.timezone.utc)
    assert tracker.sync(timeout=60) == 0

    reader = modeltrail.Tracker(db_url)
    online, spooled = reader.versions("m")
    # Numbers follow arrival: the older training is version 2 ...
    assert (online.number, spooled.number) == (1, 2)
    assert spooled.training_id == early.id and reader.get_training(spooled.training_id).params["lr"] == 0.1
    # ... and its time is its own finish on the client, not the replay.
    assert spooled.created_at == finished_at == reader.get_training(spooled.training_id).ended_at
    assert before_finish <= spooled.created_at <= after_finish < online.created_at < replayed_at
    # The README says so, in the registry section.
    registry = README.read_text(encoding="utf-8").split("## Registry, deployments", 1)[1].split("\n## ", 1)[0]
    assert "numbered in the order they reach the ledger" in registry
    assert "its time (`created_at`) is when the training finished" in registry
