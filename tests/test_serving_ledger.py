"""Serving instances in the ledger, through the Tracker: recorded, beating, switched, ended, read as lost,
and shown by ``modeltrail instances`` and the dashboard's model page (no server process here)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

import modeltrail
from modeltrail import ui
from modeltrail.cli import main


@pytest.fixture
def ledger(db_url: str) -> Iterator[modeltrail.Tracker]:
    with modeltrail.Tracker(db_url) as tracker:
        for _ in range(2):
            with tracker.training("churn", framework="sklearn"):
                pass
        tracker.deploy("churn", 1, "production")
        yield tracker


def start(tracker: modeltrail.Tracker, **kw: object) -> modeltrail.ServingInstanceRecord:
    deployment = tracker.deployment("churn", "production")
    assert deployment is not None
    options: dict[str, object] = {"host": "10.0.0.7", "port": 8080, "pid": 4242, "heartbeat_s": 60.0, **kw}
    return tracker.start_serving("churn", "production", deployment_id=deployment.id, **options)  # type: ignore[arg-type]


def age_heartbeat(url: str, instance_id: int, seconds: float) -> None:
    """Move the instance's last heartbeat ``seconds`` into the past, as a killed server leaves it."""
    engine = create_engine(url)
    then = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
    stored = then if url.startswith("postgresql") else then.replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE serving_instances SET heartbeat_at = :t WHERE id = :i"), {"t": stored, "i": instance_id}
        )
    engine.dispose()


def test_an_instance_is_recorded_beats_switches_and_ends(ledger: modeltrail.Tracker) -> None:
    first = start(ledger)
    assert (first.state, first.version, first.host, first.port, first.pid, first.url) == (
        "serving", 1, "10.0.0.7", 8080, 4242, "http://10.0.0.7:8080"
    )  # fmt: skip
    assert first.lost_after_s == 180.0 and first.ended_at is None
    assert ledger.serving_heartbeat(first.id).version == 1  # the heartbeat answers what serves now
    deployed = ledger.deploy("churn", 2, "production")
    assert ledger.serving_heartbeat(first.id) == deployed
    switched = ledger.record_serving_switch(first.id, deployed.id, reason="deploy of version 2")
    assert (switched.version, switched.deployment_id) == (2, deployed.id)
    ledger.end_serving(first.id, reason="SIGTERM")
    ledger.end_serving(first.id, state="failed", reason="again")  # a second end changes nothing
    ended = ledger.serving_instance(first.id)
    assert (ended.state, ended.end_reason, ended.version) == ("stopped", "SIGTERM", 2)
    events = ledger.audit(action="serving.*", entity="serving_instance", entity_id=first.id)
    assert [e.action for e in events] == ["serving.stop", "serving.switch", "serving.start"]
    assert events[1].before["version"] == 1 and events[1].after["version"] == 2
    assert events[1].after["reason"] == "deploy of version 2"
    ledger.undeploy("churn", "production")
    second = start(ledger) if ledger.deployment("churn", "production") else None
    assert second is None
    assert ledger.serving_heartbeat(first.id) is None  # nothing serves production now


def test_silence_reads_lost_and_a_returning_heartbeat_reads_serving(db_url: str, ledger: modeltrail.Tracker) -> None:
    brief = start(ledger, heartbeat_s=0.5)
    assert brief.lost_after_s == 2.0  # three beats, but never under two seconds
    ledger.end_serving(brief.id)
    instance = start(ledger, heartbeat_s=30)
    assert instance.lost_after_s == 90.0
    age_heartbeat(db_url, instance.id, 600)
    assert ledger.serving_instance(instance.id).state == "lost"
    assert [i.id for i in ledger.serving_instances("churn", state="lost")] == [instance.id]
    assert instance.id not in [i.id for i in ledger.serving_instances("churn", state="serving")]
    ledger.serving_heartbeat(instance.id)  # the database outage ended: it beats again
    assert ledger.serving_instance(instance.id).state == "serving"
    ledger.end_serving(instance.id, state="failed", reason="MemoryError")
    age_heartbeat(db_url, instance.id, 600)
    assert ledger.serving_instance(instance.id).state == "failed"  # an ended instance is never lost


def test_bad_input_is_refused_before_anything_is_written(ledger: modeltrail.Tracker) -> None:
    deployment = ledger.deployment("churn", "production")
    assert deployment is not None
    for kw, message in (
        ({"port": 70000}, "port must be an integer from 0 to 65535"),
        ({"pid": -1}, "pid must be an integer"),
        ({"heartbeat_s": 0}, "heartbeat interval must be a number of seconds above 0"),
        ({"host": ""}, "host must be a non-empty string"),
    ):
        with pytest.raises(modeltrail.ValidationError, match=message):
            start(ledger, **kw)
    with pytest.raises(modeltrail.NotFoundError, match="no deployment 999"):
        ledger.start_serving("churn", "production", deployment_id=999, host="h", port=1, pid=1, heartbeat_s=1)
    with pytest.raises(modeltrail.NotFoundError, match="no serving instance 5"):
        ledger.serving_heartbeat(5)
    with pytest.raises(modeltrail.ValidationError, match="state must be one of"):
        ledger.serving_instances(state="gone")
    with pytest.raises(modeltrail.ValidationError, match="an instance ends as one of"):
        ledger.end_serving(1, state="lost")
    assert ledger.serving_instances() == [] and ledger.audit(action="serving.*") == []


def test_the_command_and_the_dashboard_show_instances(
    db_url: str, ledger: modeltrail.Tracker, capsys: pytest.CaptureFixture[str]
) -> None:
    alive, dead = start(ledger), start(ledger, port=8081, pid=4343)
    age_heartbeat(db_url, dead.id, 600)
    assert main(["--uri", db_url, "instances", "churn"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["id", "model", "environment", "version", "state", "url"]
    assert [line.split()[:6] for line in lines[1:]] == [
        [str(dead.id), "churn", "production", "1", "lost", "http://10.0.0.7:8081"],
        [str(alive.id), "churn", "production", "1", "serving", "http://10.0.0.7:8080"],
    ]
    assert main(["--uri", db_url, "--json", "instances", "--state", "serving"]) == 0
    assert [i["id"] for i in json.loads(capsys.readouterr().out)] == [alive.id]

    with TestClient(ui.create_app(db_url)) as client:
        page = client.get("/models/churn")
        assert page.status_code == 200 and 'id="instances-table"' in page.text
        assert '<tr class="instance-lost">' in page.text and '<tr class="instance-serving">' in page.text
        assert "http://10.0.0.7:8081" in page.text
        api = client.get("/api/models/churn/instances", params={"state": "lost"}).json()
        assert [(i["id"], i["state"], i["port"]) for i in api] == [(dead.id, "lost", 8081)]
