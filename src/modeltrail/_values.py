"""How Python values become rows and come back unchanged.

Three concerns live here because every writer and reader shares them:

* floats, including NaN and the infinities that MySQL's DOUBLE rejects;
* hyperparameters of any type, stored as JSON plus a display string that a person can read
  (a class by its qualified name, a Path as a string, never ``<object at 0x...>``);
* secrets: what looks like a credential is masked first (the rules live in :mod:`._secrets`).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import operator
import os
from collections.abc import Mapping
from typing import Any

from ._errors import ValidationError
from ._secrets import REDACTED, is_secret_key, redact

FINITE, NAN, POS_INF, NEG_INF = 0, 1, 2, 3
DBL_MAX = 1.7976931348623157e308

#: Arrays up to this many elements are kept by value; larger ones by type and shape.
ARRAY_INLINE_MAX = 64
_FLOAT_TAG = "$float"
_INT_TAG = "$int"
#: Deeper nesting is refused: MariaDB checks JSON only to 32 levels (MySQL 100), and a
#: version's param diff and its audit event wrap a value in 4 more. No config needs more.
MAX_DEPTH = 24


# --------------------------------------------------------------------- floats
def encode_float(value: float) -> tuple[float | None, int]:
    """Split a float into the (value, kind) pair the schema stores (MySQL's DOUBLE takes no NaN or inf)."""
    if value - value == 0.0:  # finite: the common case, one comparison (the writer calls this per point)
        return value, FINITE
    if value != value:
        return None, NAN
    return (DBL_MAX, POS_INF) if value > 0 else (-DBL_MAX, NEG_INF)


def decode_float(value: float | None, kind: int) -> float:
    """Inverse of :func:`encode_float`."""
    if kind == FINITE and value is not None:
        return float(value)
    if kind == POS_INF:
        return math.inf
    if kind == NEG_INF:
        return -math.inf
    return math.nan


def as_metric_value(value: Any, key: str) -> float:
    """A metric value as a plain float: Python, numpy and torch scalars are accepted."""
    if type(value) is float:
        return value
    if isinstance(value, (str, bytes)) or value is None:
        raise ValidationError(f"metric {key!r}: value {value!r} is not a number", value=value)
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValidationError(f"metric {key!r}: value {value!r} is not a number", value=value) from e


# --------------------------------------------------------------------- params
def qualified_name(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__qualname__
    return f"{module}.{name}" if module and module != "builtins" else str(name)


def to_jsonable(value: Any, *, limit: int = MAX_DEPTH, _depth: int = 0) -> Any:
    """A JSON-safe, readable form of ``value``; non-finite floats are tagged so they round-trip."""
    if _depth > limit:
        raise ValidationError(f"param value nests deeper than {limit} levels", value=value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError(f"param value contains a NUL character: {value[:40]!r}", value=value)
        return value
    if isinstance(value, int):
        # Beyond 64 bits JSON columns turn integers into doubles; tagged, they round-trip exactly.
        return int(value) if -(2**63) <= value < 2**63 else {_INT_TAG: str(int(value))}
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {_FLOAT_TAG: repr(float(value))}
    if isinstance(value, Mapping):
        return {str(k): _redact_nested(str(k), v, limit, _depth) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v, limit=limit, _depth=_depth + 1) for v in items]
    if isinstance(value, enum.Enum):
        return f"{qualified_name(type(value))}.{value.name}"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        return qualified_name(value)
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        # numpy / torch / pandas: scalars by value, small arrays by value, big ones by type and shape.
        size = 1
        for n in tuple(shape):
            size *= int(n)
        if tuple(shape) == () and hasattr(value, "item"):
            return to_jsonable(value.item(), limit=limit, _depth=_depth + 1)
        if size <= ARRAY_INLINE_MAX and hasattr(value, "tolist"):
            return to_jsonable(value.tolist(), limit=limit, _depth=_depth + 1)
        return describe_array(value)
    if hasattr(value, "item") and callable(value.item):
        try:
            return to_jsonable(value.item(), limit=limit, _depth=_depth + 1)
        except (TypeError, ValueError):
            pass
    text = repr(value)
    if " at 0x" in text or text.startswith("<"):
        return qualified_name(type(value))
    return text


def describe_array(value: Any) -> str:
    shape = "x".join(str(int(n)) for n in tuple(value.shape))
    return f"{qualified_name(type(value))}(shape={shape}, dtype={value.dtype})"


def _redact_nested(key: str, value: Any, limit: int, depth: int) -> Any:
    return REDACTED if is_secret_key(key) else to_jsonable(value, limit=limit, _depth=depth + 1)


def from_jsonable(value: Any) -> Any:
    """Inverse of the float tagging in :func:`to_jsonable`."""
    if isinstance(value, dict):
        if len(value) == 1 and _FLOAT_TAG in value:
            return float(value[_FLOAT_TAG])
        if len(value) == 1 and _INT_TAG in value:
            return int(value[_INT_TAG])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def float_to_json(value: float) -> Any:
    """One float as JSON: a number, or ``{"$float": "nan"}`` for what JSON cannot spell."""
    return to_jsonable(float(value))


def float_from_json(value: Any) -> float:
    """Inverse of :func:`float_to_json`."""
    return float(from_jsonable(value))


def display(value: Any) -> str:
    """The string people read for a stored param value."""
    if isinstance(value, str):
        return value
    return json.dumps(from_jsonable(value), ensure_ascii=False, sort_keys=True, allow_nan=True)


def check_key(key: Any, what: str) -> str:
    """Param and metric keys: 1-255 characters, no NUL, no trailing whitespace.

    MySQL's utf8mb4 collations compare 'loss' and 'loss ' as equal in unique keys, and
    PostgreSQL refuses NUL in text, so such keys would collide or fail at write time.
    """
    if not isinstance(key, str):
        raise ValidationError(f"{what} key must be a string, got {type(key).__name__} {key!r}", value=key)
    if not key.strip() or len(key) > 255:
        raise ValidationError(f"{what} key must be 1 to 255 characters, got {key[:40]!r}", value=key)
    if "\x00" in key or key != key.rstrip():
        raise ValidationError(f"{what} key {key!r} contains NUL or ends with whitespace", value=key)
    return key


def check_param_key(key: Any) -> str:
    return check_key(key, "param")


def encode_param(key: str, value: Any) -> tuple[Any, str]:
    """(JSON value, display string) for one param, redacted when the key looks secret."""
    check_param_key(key)
    if is_secret_key(key):
        return REDACTED, REDACTED
    try:
        stored = to_jsonable(redact(value))
    except ValidationError as e:
        raise ValidationError(f"param {key[:40]!r}: {e}", value=e.value) from e
    return stored, display(stored)


def flatten(params: Mapping[str, Any], *, sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: how Lightning's ``hparams`` and nested configs are stored."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, sep=sep, prefix=key))
        else:
            out[key] = v
    return out


def param_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Structured difference between two params dicts (stored JSON values)."""
    added = {k: new[k] for k in sorted(new.keys() - old.keys())}
    removed = {k: old[k] for k in sorted(old.keys() - new.keys())}
    changed = {
        k: {"old": old[k], "new": new[k]}
        for k in sorted(old.keys() & new.keys())
        if _json_key(old[k]) != _json_key(new[k])
    }
    return {"added": added, "removed": removed, "changed": changed}


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


NAME_MAX = 200  # model and dataset names (the schema's column length)
MAX_STEP = 2**62  # fits a signed 64-bit column with room to spare


def check_model_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"model name must be a non-empty string, got {name!r}", value=name)
    if len(name) > NAME_MAX:
        raise ValidationError(
            f"model name is {len(name)} characters, the limit is {NAME_MAX}: {name[:40]!r}...", value=name
        )
    if name != name.strip() or "\x00" in name:
        raise ValidationError(f"model name has leading or trailing whitespace or a NUL: {name!r}", value=name)
    return name


def check_metric_key(key: Any) -> str:
    return check_key(key, "metric")


def check_step(step: Any) -> int:
    if isinstance(step, (bool, float)):
        raise ValidationError(f"step must be a non-negative integer, got {step!r}", value=step)
    try:
        value = operator.index(step)
    except TypeError as e:
        raise ValidationError(f"step must be a non-negative integer, got {step!r}", value=step) from e
    if not 0 <= value <= MAX_STEP:
        raise ValidationError(f"step must be a non-negative integer, got {step!r}", value=step)
    return value


# ------------------------------------------------- registry inputs (deployments, evaluations, audit)
ENVIRONMENT_MAX = 64
USER_MAX = 128
DESCRIPTION_MAX = 10_000


def check_environment(environment: Any) -> str:
    if not isinstance(environment, str) or not environment.strip():
        raise ValidationError(f"environment must be a non-empty string, got {environment!r}", value=environment)
    if len(environment) > ENVIRONMENT_MAX or environment != environment.strip():
        raise ValidationError(
            f"environment must be at most {ENVIRONMENT_MAX} characters without surrounding spaces, got {environment!r}",
            value=environment,
        )
    return environment


def check_text(name: str, value: Any, limit: int | None = None) -> str | None:
    """An optional free text (reason, endpoint, who, description): None stays None, else a string within ``limit``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, got {value!r}", value=value)
    if limit is not None and len(value) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters: {value[:40]!r}...", value=value)
    return value


def check_time(at: Any, *, day_end: bool = True) -> dt.datetime:
    """A moment from a timezone-aware datetime, or from a date: the end of that day (UTC), or its start."""
    if isinstance(at, dt.datetime):
        if at.tzinfo is None:
            raise ValidationError(f"naive datetime {at!r}: give a timezone-aware one (UTC)", value=at)
        return at.astimezone(dt.timezone.utc)
    if isinstance(at, dt.date):
        return dt.datetime.combine(at, dt.time.max if day_end else dt.time.min, tzinfo=dt.timezone.utc)
    raise ValidationError(f"expected a datetime or a date, got {at!r}", value=at)


def check_dataset_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX or name != name.strip():
        raise ValidationError(
            f"a dataset name is 1 to {NAME_MAX} characters without surrounding spaces, got {name!r}", value=name
        )
    return name


def check_metrics(metrics: Any) -> dict[str, float]:
    """A non-empty mapping of metric name to number, as checked keys and plain floats."""
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValidationError(f"metrics must be a non-empty mapping of name to number, got {metrics!r}", value=metrics)
    return {check_metric_key(k): as_metric_value(v, k) for k, v in metrics.items()}
