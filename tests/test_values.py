from __future__ import annotations

import datetime as dt
import enum
import math
from pathlib import Path

import numpy as np
import pytest

from modeltrail._errors import ValidationError
from modeltrail._values import (
    MAX_JSON_BYTES,
    NEG_ZERO,
    REDACTED,
    TEXT_MAX_BYTES,
    as_metric_value,
    check_chars,
    clean_text,
    decode_float,
    encode_float,
    encode_param,
    flatten,
    from_jsonable,
    param_diff,
)


class Color(enum.Enum):
    RED = 1


def helper() -> None:
    pass


@pytest.mark.parametrize("value", [0.0, -0.0, -1.5, 1e308, -1e-300, 5e-324, -5e-324, math.nan, math.inf, -math.inf])
def test_float_round_trip(value: float) -> None:
    stored, kind = encode_float(value)
    back = decode_float(stored, kind)
    assert (math.isnan(back) and math.isnan(value)) or back == value
    assert math.copysign(1.0, back) == math.copysign(1.0, value)  # -0.0 keeps its sign


def test_negative_zero_is_stored_as_a_plain_zero_of_its_own_kind() -> None:
    """SQLite and MariaDB drop a zero's sign, so the sign travels in ``kind``; ordering sees 0.0."""
    assert encode_float(-0.0) == (0.0, NEG_ZERO) and math.copysign(1.0, encode_float(-0.0)[0]) == 1.0
    assert encode_float(0.0)[1] != NEG_ZERO


@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.array(False)])
def test_bool_metric_values_are_refused(value: object) -> None:
    with pytest.raises(ValidationError, match=r"'done'.*boolean"):
        as_metric_value(value, "done")


def test_metric_values_accept_numpy_and_reject_text() -> None:
    assert as_metric_value(np.float32(0.5), "k") == 0.5
    assert type(as_metric_value(np.int64(3), "k")) is float
    with pytest.raises(ValidationError, match="'abc'"):
        as_metric_value("abc", "k")
    with pytest.raises(ValidationError, match="None"):
        as_metric_value(None, "k")


def test_params_are_readable_never_object_addresses() -> None:
    class Thing:
        pass

    cases = {
        "cls": (dict, "dict"),
        "fn": (helper, f"{__name__}.helper"),
        "path": (Path("/data/x.csv"), "/data/x.csv"),
        "enum": (Color.RED, f"{__name__}.Color.RED"),
        "when": (dt.date(2026, 1, 2), "2026-01-02"),
        "np": (np.float64(0.25), 0.25),
        "small_array": (np.arange(3), [0, 1, 2]),
    }
    for key, (value, expected) in cases.items():
        stored, shown = encode_param(key, value)
        assert stored == expected, key
    stored, shown = encode_param("obj", Thing())
    assert "0x" not in shown and "Thing" in shown
    stored, _ = encode_param("big", np.zeros((1000, 20)))
    assert stored == "numpy.ndarray(shape=1000x20, dtype=float64)"


@pytest.mark.parametrize(
    "key", ["password", "db_PASSWORD", "api_key", "apiKey", "token", "client_secret", "aws_access_key"]
)
def test_secret_looking_params_are_redacted(key: str) -> None:
    assert encode_param(key, "hunter2") == (REDACTED, REDACTED)


def test_nested_secrets_redacted_and_nonfinite_floats_tagged() -> None:
    stored, shown = encode_param("config", {"db": {"password": "pw", "host": "h"}, "lr": math.nan})
    assert stored["db"]["password"] == REDACTED
    assert "pw" not in shown.replace("password", "")
    back = from_jsonable(stored)
    assert math.isnan(back["lr"]) and back["db"]["host"] == "h"


def test_bad_param_keys_are_named() -> None:
    with pytest.raises(ValidationError, match="1 to 255"):
        encode_param("", 1)
    with pytest.raises(ValidationError, match="'lr '"):
        encode_param("lr ", 1)
    with pytest.raises(ValidationError, match="255"):
        encode_param("k" * 300, 1)


def test_unencodable_text_and_nul_are_named_with_their_position() -> None:
    with pytest.raises(ValidationError, match=r"metric key 'loss\\udc80'.*position 4"):
        check_chars("loss\udc80", "metric key")
    with pytest.raises(ValidationError, match=r"'a\\x00b' contains a NUL character at position 1"):
        check_chars("a\x00b", "tag")
    long = "/data/" + "d" * 100 + "/x\udcff.csv"
    with pytest.raises(ValidationError, match=r"around it: .*x\\udcff\.csv") as e:
        check_chars(long, "dataset source")
    assert e.value.value == long
    assert check_chars("ключ 🔑", "k") == "ключ 🔑"


def test_clean_text_makes_any_text_storable() -> None:
    assert clean_text("plain") == "plain"
    assert clean_text("a\x00b\udc80") == "a\\x00b\\udc80"
    cut = clean_text("é" * TEXT_MAX_BYTES)
    assert len(cut.encode()) <= TEXT_MAX_BYTES and cut.endswith(" ... (cut)")


def test_params_bigger_than_the_cap_are_refused_by_key_and_size() -> None:
    encode_param("ok", "x" * (MAX_JSON_BYTES - 2))
    with pytest.raises(ValidationError, match=r"param 'vocab' is 1,048,577 bytes as JSON, the limit .* 1,048,576"):
        encode_param("vocab", "x" * (MAX_JSON_BYTES - 1))
    with pytest.raises(ValidationError, match=r"param 'cfg'.*both stored as '1'"):
        encode_param("cfg", {1: "a", "1": "b"})


def test_flatten_refuses_keys_that_become_the_same() -> None:
    with pytest.raises(ValidationError, match=r"'a\.1'"):
        flatten({"a": {1: "x", "1": "y"}})
    with pytest.raises(ValidationError, match=r"'a\.b'"):
        flatten({"a": {"b": 1}, "a.b": 2})


def test_flatten_and_diff() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
    diff = param_diff({"a": 1, "b": 2, "c": [1]}, {"b": 3, "c": [1], "d": 4})
    assert diff == {"added": {"d": 4}, "removed": {"a": 1}, "changed": {"b": {"old": 2, "new": 3}}}
