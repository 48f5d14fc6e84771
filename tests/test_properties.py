"""Arbitrary input through the core API: a clear error naming the value, or an exact round trip."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modeltrail
from modeltrail import ValidationError
from modeltrail._secrets import is_secret_key

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Any code point, lone surrogates (what os.fsdecode makes of bytes that are not UTF-8) and NUL included.
any_char = st.characters(codec=None, exclude_categories=())
keys = st.text(min_size=0, max_size=300) | st.text(any_char, max_size=20)
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.none() | st.booleans() | st.integers() | floats | st.text(max_size=10_000) | st.text(any_char, max_size=5)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5),
    max_leaves=30,
)


def same(a: Any, b: Any, *, signed_zero: bool = True) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b and (not signed_zero or math.copysign(1.0, a) == math.copysign(1.0, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, signed_zero=signed_zero) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], signed_zero=signed_zero) for k in a)
    return type(a) is type(b) and a == b


def redacted(key: str, value: Any) -> Any:
    if is_secret_key(key):
        return "***"
    if isinstance(value, dict):
        return {k: redacted(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted("", v) for v in value]
    return value


@FAST
@given(params=st.dictionaries(keys, values, max_size=8))
def test_params_round_trip_or_are_refused_by_name(db_url_sqlite_mysql: str, params: dict[str, Any]) -> None:
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    try:
        run = tracker.training("props", params=params)
    except ValidationError as e:
        # The message names the param it refused (keys are cut at 40 characters).
        assert any(repr(k[:40]).rstrip("'\"") in str(e) for k in params), str(e)
        return
    run.finish()
    stored = tracker.get_training(run.id).params
    assert set(stored) == set(params)
    for key, value in params.items():
        assert same(stored[key], redacted(key, value)), (key, value, stored[key])


@FAST
@given(points=st.lists(st.tuples(keys, floats | st.integers() | st.text(max_size=5), st.integers()), max_size=20))
def test_metrics_round_trip_or_are_refused_by_name(
    db_url_sqlite_mysql: str, points: list[tuple[str, Any, int]]
) -> None:
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    expected: dict[str, list[tuple[int, float]]] = {}
    with tracker.training("props") as run:
        for key, value, step in points:
            try:
                run.log_metric(key, value, step=step)
            except ValidationError as e:
                assert e.value in (key, value, step)
                continue
            expected.setdefault(key, []).append((step, float(value)))
    for key, logged in expected.items():
        history = [(p.step, p.value) for p in tracker.metric_history(run, key)]
        # The history keeps no sign on a zero on SQLite/MariaDB yet (the writer's fast path; see
        # test_reliability_values.test_negative_zero_round_trips_in_metric_history).
        assert same(history, sorted(logged, key=lambda p: p[0]), signed_zero=False), key


def test_large_and_deep_params(db_url_sqlite_mysql: str) -> None:
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    deep: Any = 1
    for _ in range(23):
        deep = {"d": deep}
    params = {f"p{i:04d}": i * 0.5 for i in range(1000)}
    params |= {"long": "x" * 10_000, "deep": deep, "unicode ключ 🔑": "値", "huge": 2**80}
    with tracker.training("big", params=params) as run:
        pass
    assert same(tracker.get_training(run.id).params, params)
    too_deep: Any = 1
    for _ in range(40):
        too_deep = [too_deep]
    try:
        tracker.training("big", params={"too_deep": too_deep})
    except ValidationError as e:
        assert "24 levels" in str(e) and "too_deep" in str(e)
    else:
        raise AssertionError("nesting past 24 levels must be refused")
