"""Issue 14, items 15 and 16: secrets never reach the ledger, errors or the dashboard; the dashboard holds its ground.

Item 14 (least-privilege roles) is proven in ``tests/test_grants.py``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys

import pytest

import modeltrail
from modeltrail._errors import ModeltrailError
from modeltrail.cli import main

SECRETS = ("hunter2", "pw-in-dsn", "k-123", "nt-key", "dc-pw", "ns-key", "obj-tok", "argv-pw", "uri-pw", "eq-pw")


@dataclasses.dataclass
class DbConfig:
    host: str
    password: str


@dataclasses.dataclass
class TrainConfig:
    lr: float
    db: DbConfig


Creds = collections.namedtuple("Creds", ["user", "api_key"])


class Client:
    def __init__(self) -> None:
        self.endpoint = "https://api.example"
        self.auth_token = "obj-tok"


def test_item15_secrets_masked_in_every_structure_url_and_command_line(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        sys,
        "argv",
        ["train.py", "--password", "argv-pw", "--db-uri", "mysql://app:uri-pw@db/x", "--api-key=eq-pw", "--lr", "0.1"],
    )
    params = {
        "db_pwd": "hunter2",
        "dsn": "postgresql://app:pw-in-dsn@db.internal/ledger",
        "nested": {"service": {"apiKey": "k-123"}, "urls": ["mysql+pymysql://u:pw-in-dsn@h/x"]},
        "creds": Creds("bob", "nt-key"),
        "config": TrainConfig(0.1, DbConfig("db", "dc-pw")),
        "args": argparse.Namespace(api_key="ns-key", epochs=3),
        "client": Client(),
        # Not secrets: whole words, not fragments.
        "max_tokens": 512,
        "tokenizer": "bpe",
        "num_passes": 4,
        "author": "ada",
        "bypass_cache": True,
    }
    tracker = modeltrail.Tracker(db_url)
    with tracker.training("llm", params=params):
        pass
    training = tracker.trainings("llm")[0]
    stored = training.params
    assert stored["db_pwd"] == "***"
    assert stored["dsn"] == "postgresql://app:***@db.internal/ledger"
    assert stored["nested"] == {"service": {"apiKey": "***"}, "urls": ["mysql+pymysql://u:***@h/x"]}
    assert stored["creds"] == ["bob", "***"]
    assert stored["config"] == "TrainConfig(lr=0.1, db=DbConfig(host='db', password='***'))"
    assert stored["args"] == "Namespace(api_key='***', epochs=3)"
    assert "auth_token='***'" in stored["client"]
    assert (stored["max_tokens"], stored["tokenizer"], stored["num_passes"]) == (512, "bpe", 4)
    assert (stored["author"], stored["bypass_cache"]) == ("ada", True)
    assert training.context["command"][1:] == [
        "train.py", "--password", "***", "--db-uri", "mysql://app:***@db/x", "--api-key=***", "--lr", "0.1",
    ]  # fmt: skip

    # What export, reproduce and the dashboard's API show carries none of them.
    exported = json.dumps(tracker.export("llm"))
    reproduction = repr(tracker.reproduce("llm"))
    tracker.close()
    assert main(["--uri", db_url, "reproduce", "llm", "--json"]) == 0
    shown = capsys.readouterr().out
    fastapi = pytest.importorskip("fastapi.testclient")
    from modeltrail.ui import app as ui_app

    api = fastapi.TestClient(ui_app.create_app(db_url)).get(f"/api/trainings/{training.id}").text
    for text in (exported, reproduction, shown, api):
        assert not [s for s in SECRETS if s in text], text[:2000]
    assert '"max_tokens"' in api and "512" in api


@pytest.mark.parametrize("password", ["p@ss", "p@ss@word", "pa:ss@"])
def test_item16_password_with_unencoded_at_never_shows_in_errors(
    password: str, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"mysql+pymysql://app:{password}@127.0.0.1:1/ledger?connect_timeout=1"
    with pytest.raises(ModeltrailError) as info:
        modeltrail.Tracker(uri, spool=False)
    assert main(["--uri", uri, "db", "current"]) != 0
    err = capsys.readouterr().err
    for text in (str(info.value), err):
        assert "app:***@" in text and "ss" not in text.replace("class", ""), text


def test_item16_dashboard_token_redirect_stays_on_this_host_and_huge_ids_are_refused(sqlite_url: str) -> None:
    fastapi = pytest.importorskip("fastapi.testclient")
    from modeltrail.ui import app as ui_app

    with modeltrail.Tracker(sqlite_url).training("churn") as run:
        run.log_metric("auc", 0.5)
    client = fastapi.TestClient(ui_app.create_app(sqlite_url, token="tok-1"))
    for path in ("//evil.example/x", "///evil.example/x", "/\\evil.example/x", "//evil.example"):
        answer = client.get(f"{path}?token=tok-1&a=1", follow_redirects=False)
        assert answer.status_code == 303, path
        location = answer.headers["location"]
        assert location.startswith("/") and not location.startswith(("//", "/\\")), location
        assert "token" not in location and location.endswith("?a=1")
    good = client.get("/models/1?token=tok-1", follow_redirects=False)
    assert good.headers["location"] == "/models/1"

    headers = {"Authorization": "Bearer tok-1"}
    too_big = (
        f"/api/trainings/{2**63}",
        f"/api/trainings/{2**64 + 5}/history",
        f"/api/trainings/{-(2**63) - 1}",
        f"/api/models/churn/leaderboard?metric=auc&limit={2**70}",
    )
    for path in too_big:
        answer = client.get(path, headers=headers)
        assert answer.status_code == 422, (path, answer.text)
        assert "less than or equal" in answer.text or "greater than or equal" in answer.text
    for path in (f"/trainings/{2**63}", f"/models/{2**70}"):
        page = client.get(path, headers={**headers, "accept": "text/html"})
        assert page.status_code == 422 and "<html" in page.text.lower()
    assert client.get(f"/api/trainings/{2**63 - 1}", headers=headers).status_code == 404
    assert client.get("/api/trainings/1", headers=headers).json()["model"] == "churn"


def test_item15_context_values_are_masked_like_params(sqlite_url: str) -> None:
    """``run.add_context`` is where checkpoint paths and connection strings land: the same rule applies."""
    tracker = modeltrail.Tracker(sqlite_url)
    with tracker.training("m") as run:
        run.add_context(
            {"db_password": "hunter2", "feature_store": "postgresql://app:s3cret@db/features", "device": "cpu"}
        )
    stored = tracker.get_training(run.id).context
    assert stored["db_password"] == "***" and stored["device"] == "cpu"
    assert "s3cret" not in str(stored["feature_store"]) and "db/features" in str(stored["feature_store"])
    tracker.close()
