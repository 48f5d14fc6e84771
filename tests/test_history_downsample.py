"""Long histories: the downsampled curve keeps every spike and both ends; pages give back the whole series."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

import modeltrail
from modeltrail import ValidationError
from modeltrail.ui import app as ui_app

POINTS = 6_000
SPIKE_AT, DIP_AT = 4_321, 1_234


def _value(i: int) -> float:
    if i == SPIKE_AT:
        return 50.0
    if i == DIP_AT:
        return -50.0
    if i == 777:
        return math.nan
    return math.sin(i / 300)


def _log(tracker: modeltrail.Tracker) -> int:
    with tracker.training("long", params={"a": 1}) as run:
        for i in range(POINTS):
            run.log_metric("loss", _value(i), step=i)
            if i % 1_000 == 999:
                run.flush()  # batches that end inside a block: the open block carries on
            if i == 3_000:
                run.log_metric("loss", 9.0, step=i)  # a step logged twice
    return tracker.trainings("long")[0].id


def _blocks_from_points(url: str) -> list[tuple[object, ...]]:
    """metric_blocks as recomputed from the raw points: what the writer's must equal."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT seq, step, value, ts FROM metric_points ORDER BY seq")).all()
            stored = conn.execute(
                text("SELECT block, count, min_step, min_value, max_step, max_value FROM metric_blocks ORDER BY block")
            ).all()
    finally:
        engine.dispose()
    expected: dict[int, list[object]] = {}
    for seq, step, value, _ in rows:
        block = expected.setdefault(seq // 256, [seq // 256, 0, None, None, None, None])
        block[1] = int(block[1]) + 1  # type: ignore[call-overload]
        if value is not None:
            if block[3] is None or value < block[3]:  # type: ignore[operator]
                block[2], block[3] = step, value
            if block[5] is None or value > block[5]:  # type: ignore[operator]
                block[4], block[5] = step, value
    assert [tuple(r) for r in stored] == [tuple(b) for b in expected.values()]
    return [tuple(r) for r in stored]


def test_downsampled_curve_keeps_ends_and_extremes(db_url: str) -> None:
    tracker = modeltrail.Tracker(db_url)
    training_id = _log(tracker)
    full = list(tracker.metric_history(training_id, "loss"))
    assert len(full) == POINTS + 1
    assert len(_blocks_from_points(db_url)) == math.ceil((POINTS + 1) / 256)
    logged = {(p.step, p.value if p.value == p.value else None) for p in full}
    for max_points in (50, 400, 1000):  # 50 and 400: from the blocks; 1000: from the points
        curve = tracker.metric_history(training_id, "loss", max_points=max_points)
        assert 10 <= len(curve) <= max_points
        assert (curve[0].step, curve[-1].step) == (0, POINTS - 1)
        assert {(p.step, p.value) for p in curve} <= logged  # real points only
        assert max(p.value for p in curve) == 50.0 and min(p.value for p in curve) == -50.0
        assert [p.step for p in curve] == sorted(p.step for p in curve)
    assert list(tracker.metric_history(training_id, "loss", max_points=POINTS + 1)) == full
    assert list(tracker.metric_history(training_id, "nothing", max_points=10)) == []


def _bucket_extremes(url: str, per: int) -> set[tuple[int, float]]:
    """Each bucket of ``per`` points (logging order)'s first lowest and first highest point, NaN never."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT seq, step, value FROM metric_points ORDER BY seq")).all()
    finally:
        engine.dispose()
    low: dict[int, tuple[int, float]] = {}
    high: dict[int, tuple[int, float]] = {}
    for seq, step, value in rows:
        if value is None:
            continue
        bucket = seq // per
        if bucket not in low or value < low[bucket][1]:
            low[bucket] = (step, value)
        if bucket not in high or value > high[bucket][1]:
            high[bucket] = (step, value)
    return set(low.values()) | set(high.values())


@pytest.mark.parametrize(
    ("max_points", "per"),
    [(50, 256), (1000, 13), (400, 31)],  # 50: one block a bucket; 1000 and 400: from the points
)
def test_downsampled_points_are_each_buckets_extremes(db_url: str, max_points: int, per: int) -> None:
    tracker = modeltrail.Tracker(db_url)
    training_id = _log(tracker)
    full = tracker.metric_history(training_id, "loss")
    curve = [(p.step, p.value) for p in tracker.metric_history(training_id, "loss", max_points=max_points)]
    ends = {(full[0].step, full[0].value), (full[-1].step, full[-1].value)}
    assert len(curve) == len(set(curve)) <= max_points
    assert set(curve) == _bucket_extremes(db_url, per) | ends
    assert curve == sorted(curve, key=lambda p: p[0])


def test_pages_give_back_the_whole_series(db_url: str) -> None:
    tracker = modeltrail.Tracker(db_url)
    training_id = _log(tracker)
    full = list(tracker.metric_history(training_id, "loss"))
    pages, after = [], None
    while True:
        page = list(tracker.metric_history(training_id, "loss", after_step=after, limit=1_000))
        if not page:
            break
        pages.append(page)
        after = page[-1].step
    joined = [p for page in pages for p in page]
    assert [(p.step, p.timestamp) for p in joined] == [(p.step, p.timestamp) for p in full]
    assert [p.value for p in joined if p.value == p.value] == [p.value for p in full if p.value == p.value]
    assert len(pages) == 7 and [p.step for p in pages[3][:2]] == [3_000, 3_000]
    ending = tracker.metric_history(training_id, "loss", after_step=2_000, limit=1_000)
    assert len(ending) == 1_001  # a page ending at step 3000 takes both of its points, in logging order
    assert [p.value for p in ending[-2:]] == [_value(3_000), 9.0]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_points": 0}, {"max_points": True}, {"limit": 0}, {"limit": 10**6}, {"after_step": "3"},
     {"max_points": 10, "limit": 10}],
)  # fmt: skip
def test_bad_history_options_are_refused(tmp_path: object, kwargs: dict[str, object]) -> None:
    tracker = modeltrail.Tracker(f"sqlite:///{tmp_path}/l.db")
    with tracker.training("m") as run:
        run.log_metric("x", 1.0)
    with pytest.raises(ValidationError):
        tracker.metric_history("m", "x", **kwargs)  # type: ignore[arg-type]


def test_dashboard_history_and_plot_use_the_downsampled_curve(
    db_url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch, count_rows: Callable[..., int]
) -> None:
    tracker = modeltrail.Tracker(db_url)
    training_id = _log(tracker)
    monkeypatch.setenv("MODELTRAIL_URI", db_url)
    client = TestClient(ui_app.create_app(db_url))
    answer = client.get(f"/api/trainings/{training_id}/history", params={"metric": "loss", "max_points": 100})
    assert answer.status_code == 200
    (series,) = answer.json()
    values = [v for _, v in series["points"]]
    assert len(values) <= 100 and max(values) == 50.0 and min(values) == -50.0
    assert series["points"][0][0] == 0 and series["points"][-1][0] == POINTS - 1
    page = client.get(f"/api/trainings/{training_id}/history/loss", params={"after_step": 5_000, "limit": 10})
    assert page.status_code == 200 and [p["step"] for p in page.json()] == list(range(5_001, 5_011))
    curves = tracker.metric_curves("long", "loss", max_points=60)
    assert len(curves) <= 60 and max(p.value for p in curves) == 50.0
    pytest.importorskip("matplotlib")
    path = tracker.plot("long", "loss", tmp_path / "loss.png")  # type: ignore[operator]
    assert path.stat().st_size > 1_000


def test_load_data_local_infile_stores_the_same_points(db_url: str) -> None:
    """With ?local_infile=1 a MySQL/MariaDB batch goes by LOAD DATA LOCAL INFILE: the same rows, NaN included."""
    if not db_url.startswith("mysql"):
        pytest.skip("LOAD DATA LOCAL INFILE is MySQL/MariaDB's")
    from modeltrail._operations import metrics

    loads: list[int] = []
    real = metrics._load_data

    def counting(conn: object, rows: list[object]) -> bool:
        used = real(conn, rows)  # type: ignore[arg-type]
        loads.append(len(rows) if used else 0)
        return used

    url = db_url + ("&" if "?" in db_url else "?") + "local_infile=1"
    tracker = modeltrail.Tracker(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "_load_data", counting)
        with tracker.training("bulk") as run:
            for i in range(20_000):  # no flush: the writer's batches grow past 2,000 points
                run.log_metric("loss", _value(i), step=i)
    assert sum(loads) > 0
    points = tracker.metric_history(run.id, "loss")
    assert [p.step for p in points] == list(range(20_000))
    values = [p.value for p in points]
    assert math.isnan(values[777]) and values[SPIKE_AT] == 50.0 and values[DIP_AT] == -50.0
    assert values[5] == _value(5)
    assert _blocks_from_points(db_url)
