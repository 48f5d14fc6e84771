"""What a last review found: each case reaches the user as a ValidationError (or a masked value), never a traceback."""

from __future__ import annotations

import collections

import pytest

import modeltrail
from modeltrail import ValidationError
from modeltrail.cli import main


@pytest.fixture
def ledger(db_url: str) -> modeltrail.Tracker:
    tracker = modeltrail.Tracker(db_url)
    with tracker.training("m", params={"depth": 4}) as run:
        run.log_metric("val_auc", 0.9)
    return tracker


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.trainings(limit=2**70),
        lambda t: t.audit(limit=2**70),
        lambda t: t.leaderboard("m", "val_auc", limit=2**70),
        lambda t: t.trainings(where="id = 99999999999999999999999"),
        lambda t: t.trainings(where="started_at > '9999-12-31T23:59:59-01:00'"),
        lambda t: t.trainings(where=5),
        lambda t: t.trainings(order_by=5),
        lambda t: t.trainings(status="bogus"),
    ],
)
def test_out_of_range_and_mistyped_search_input_is_a_validation_error(ledger: modeltrail.Tracker, call) -> None:
    with pytest.raises(ValidationError):
        call(ledger)


def test_the_cli_answers_huge_numbers_and_edge_dates_with_one_line(
    ledger: modeltrail.Tracker, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["trainings", "--limit", "99999999999999999999"],
        ["audit", "--since", "9999-12-31T23:59:59-01:00"],
        ["trainings", "--where", "params.depth = 99999999999999999999"],
    ):
        assert main(["--uri", ledger.uri, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("modeltrail: error: ") and "Traceback" not in err, err


def test_url_passwords_in_sets_bytes_and_exception_text_are_masked(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    params = {
        "uris": {"postgresql://u:hunter2@h/db"},
        "queue": collections.deque(["mysql+pymysql://app:hunter3@db/x"]),
        "raw": b"postgresql://u:hunter4@h/db",
    }
    with pytest.raises(RuntimeError), tracker.training("m", params=params) as run:
        raise RuntimeError("cannot connect to postgresql://u:hunter5@h/db")
    record = tracker.get_training(run.id)
    stored = repr(record.params) + (record.error or "")
    for secret in ("hunter2", "hunter3", "hunter4", "hunter5"):
        assert secret not in stored, stored
    assert "h/db" in stored and "cannot connect" in stored
    tracker.close()


def test_tags_and_descriptions_mask_secrets_too(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    with tracker.training(
        "m", tags={"db": "postgresql://u:hunter6@h/db", "api_key": "K123"}, description="reads mysql://a:hunter7@h/x"
    ):
        pass
    model = tracker.model("m")
    shown = repr(model.tags) + (model.description or "")
    assert "hunter6" not in shown and "K123" not in shown and "hunter7" not in shown, shown
    assert model.tags["api_key"] == "***" and "h/db" in model.tags["db"]
    tracker.close()


def test_refused_write_descriptions_are_bounded_and_still_reported(sqlite_url: str) -> None:
    """A lasting fault (every write refused) must not grow the writer's memory without bound."""
    from modeltrail._writer import FAILURES_KEPT, writer_for

    tracker = modeltrail.Tracker(sqlite_url)
    writer = writer_for(tracker.store)
    for i in range(FAILURES_KEPT + 10):
        writer._fail("points", {"rows": [("u", "loss", i, 0.0, 0.0)]}, RuntimeError("refused"))
    assert len(writer.failures) <= FAILURES_KEPT
    with pytest.warns(modeltrail.ModeltrailWarning, match="refused and are not recorded"):
        writer._report()
    tracker.close()
