"""How Python values become rows and come back unchanged.

Three concerns live here because every writer and reader shares them:

* floats, including NaN and the infinities that MySQL's DOUBLE rejects, and the sign of -0.0;
* what the database would refuse (text that is not UTF-8, NUL, a column's length, a value
  bigger than a server packet), refused at the call that passes it, never later by the writer;
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

from ._errors import ConfigurationError, ValidationError
from ._secrets import REDACTED, is_secret_key, redact

FINITE, NAN, POS_INF, NEG_INF, NEG_ZERO = 0, 1, 2, 3, 4
DBL_MAX = 1.7976931348623157e308

#: Arrays up to this many elements are kept by value; larger ones by type and shape.
ARRAY_INLINE_MAX = 64
_FLOAT_TAG = "$float"
_INT_TAG = "$int"
#: Deeper nesting is refused: MariaDB checks JSON only to 32 levels (MySQL 100), and a
#: version's param diff and its audit event wrap a value in 4 more. No config needs more.
MAX_DEPTH = 24

#: The largest param value, and the largest training context, as the JSON text the database
#: receives (bytes, non-ASCII escaped). MariaDB's default ``max_allowed_packet`` is 16 MiB and the
#: driver may double a value when it escapes it, so one value stays far below that.
MAX_JSON_BYTES = 1 << 20
#: All params of one training together: a version's param diff holds its parent's and its own.
MAX_PARAMS_BYTES = 3 << 20
#: A dataset's feature names together (wide frames have many).
MAX_FEATURES_BYTES = 4 << 20
#: A TEXT column on MySQL/MariaDB holds 65,535 bytes (reasons, descriptions, paths, errors).
TEXT_MAX_BYTES = 65_535


# --------------------------------------------------------------------- floats
def encode_float(value: float) -> tuple[float | None, int]:
    """Split a float into the (value, kind) pair the schema stores (MySQL's DOUBLE takes no NaN or inf).

    -0.0 is stored as 0.0 of kind NEG_ZERO: SQLite and MariaDB keep no sign on a zero.
    """
    if value - value == 0.0:  # finite: the common case, one comparison (the writer calls this per point)
        if value or math.copysign(1.0, value) > 0.0:
            return value, FINITE
        return 0.0, NEG_ZERO
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
    if kind == NEG_ZERO:
        return -0.0
    return math.nan


def as_metric_value(value: Any, key: str) -> float:
    """A metric value as a plain float: Python, numpy and torch scalars are accepted; booleans are not."""
    if type(value) is float:
        return value
    if isinstance(value, (str, bytes)) or value is None:
        raise ValidationError(f"metric {key!r}: value {value!r} is not a number", value=value)
    if type(value) is not int and (isinstance(value, bool) or _is_bool_scalar(value)):  # an int is no bool
        raise ValidationError(
            f"metric {key!r}: value {value!r} is a boolean, not a number; log float(value) to record it as 1.0/0.0",
            value=value,
        )
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValidationError(f"metric {key!r}: value {value!r} is not a number", value=value) from e


def _is_bool_scalar(value: Any) -> bool:
    """numpy's and torch's booleans (neither subclasses bool)."""
    dtype = getattr(value, "dtype", None)
    return dtype is not None and (getattr(dtype, "kind", None) == "b" or str(dtype) == "torch.bool")


# ----------------------------------------------------------------------- text
def check_chars(text: str, what: str) -> str:
    """``text`` as every backend stores it: UTF-8 encodable (no lone surrogate) and without NUL.

    ``os.fsdecode`` turns a file name that is not UTF-8 into lone surrogates (``"loss\\udc80"``),
    which no driver can send; PostgreSQL refuses NUL in text and JSON, so every backend does.
    """
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValidationError(
                f"{what} {_named(text, e.start)} cannot be stored: {text[e.start]!r} at position {e.start} is "
                "not valid Unicode (a lone surrogate, as os.fsdecode makes of a name that is not UTF-8)",
                value=text,
            ) from None
    if "\x00" in text:
        at = text.index("\x00")
        raise ValidationError(f"{what} {_named(text, at)} contains a NUL character at position {at}", value=text)
    return text


def _named(text: str, at: int, n: int = 40) -> str:
    """``text`` for an error message: its start, and the part around position ``at`` when that is further."""
    if len(text) <= n:
        return repr(text)
    if at < n - 5:
        return repr(text[:n] + "...")
    start = min(at - n // 2, len(text) - n)
    part = "..." + text[start : start + n] + ("..." if start + n < len(text) else "")
    return f"{text[:n] + '...'!r} (around it: {part!r})"


def check_string(value: Any, what: str, *, max_chars: int | None = None, max_bytes: int | None = None) -> str:
    """A string within a column's limits: ``max_chars`` for VARCHAR(n), ``max_bytes`` for TEXT."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__} {_cut(value)!r}", value=value)
    if max_chars is not None and len(value) > max_chars:
        raise ValidationError(
            f"{what} is {len(value)} characters, the limit is {max_chars}: {_cut(value)!r}", value=value
        )
    check_chars(value, what)
    if max_bytes is not None and len(value) * 4 > max_bytes:
        size = len(value.encode("utf-8"))
        if size > max_bytes:
            raise ValidationError(
                f"{what} is {size:,} bytes as UTF-8, the limit is {max_bytes:,}: {_cut(value)!r}", value=value
            )
    return value


def clean_text(text: str, max_bytes: int = TEXT_MAX_BYTES) -> str:
    """Text modeltrail makes itself (an exception's message): made storable instead of refused.

    NUL and what cannot be encoded become backslash escapes, and what is past ``max_bytes`` is cut.
    """
    if text.isascii() and len(text) <= max_bytes and "\x00" not in text:
        return text
    text = text.replace("\x00", "\\x00")
    data = text.encode("utf-8", "backslashreplace")
    if len(data) > max_bytes:
        data = data[: max_bytes - 20] + b" ... (cut)"
    return data.decode("utf-8", "ignore")


def clean_json(value: Any) -> Any:
    """A JSON value modeltrail captured itself (the environment: command line, paths) with every text storable."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


def _cut(value: Any, n: int = 40) -> Any:
    """A long value shortened for an error message."""
    return value[:n] + "..." if isinstance(value, str) and len(value) > n else value


def json_size(value: Any) -> int:
    """Bytes of ``value`` (a :func:`to_jsonable` result) as the JSON text a server column receives."""
    return len(json.dumps(value))


def check_distinct_keys(mapping: Mapping[Any, Any], what: str) -> None:
    """Refuse keys that become the same string (``{1: 'a', '1': 'b'}``): one would silently replace the other."""
    if all(type(k) is str for k in mapping):
        return
    seen: dict[str, Any] = {}
    for k in mapping:
        text = str(k)
        if text in seen:
            raise ValidationError(
                f"{what} keys {seen[text]!r} and {k!r} are both stored as {text!r}; one would be lost", value=k
            )
        seen[text] = k


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
        return check_chars(value, "param value")
    if isinstance(value, int):
        # Beyond 64 bits JSON columns turn integers into doubles; tagged, they round-trip exactly.
        return int(value) if -(2**63) <= value < 2**63 else {_INT_TAG: str(int(value))}
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {_FLOAT_TAG: repr(float(value))}
    if isinstance(value, Mapping):
        _check_object_keys(value)
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


def _check_object_keys(mapping: Mapping[Any, Any]) -> None:
    check_distinct_keys(mapping, "mapping")
    for k in mapping:
        check_chars(str(k), "mapping key")


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
        return {k: from_jsonable(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) if isinstance(v, (dict, list)) else v for v in value]
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
    return check_chars(key, f"{what} key")


def check_param_key(key: Any) -> str:
    return check_key(key, "param")


def encode_param(key: str, value: Any) -> tuple[Any, str]:
    """(JSON value, display string) for one param, redacted when the key looks secret."""
    stored, shown, _ = encode_param_sized(key, value)
    return stored, shown


def encode_param_sized(key: str, value: Any) -> tuple[Any, str, int]:
    """:func:`encode_param` and the bytes the param weighs (key and value as JSON), checked against the caps."""
    check_param_key(key)
    if is_secret_key(key):
        return REDACTED, REDACTED, json_size(key) + json_size(REDACTED)
    try:
        stored = to_jsonable(redact(value))
    except ValidationError as e:
        raise ValidationError(f"param {key[:40]!r}: {e}", value=e.value) from e
    size = json_size(stored)
    if size > MAX_JSON_BYTES:
        raise ValidationError(
            f"param {key[:40]!r} is {size:,} bytes as JSON, the limit for one value is {MAX_JSON_BYTES:,}; "
            "store big data as an artifact or a dataset",
            value=key,
        )
    return stored, display(stored), size + json_size(key)


def encode_params(params: Any) -> dict[str, tuple[Any, str, int]]:
    """Each param as (JSON value, display string, bytes it weighs); see :func:`check_params_weight`."""
    if not isinstance(params, Mapping):
        raise ValidationError(f"params must be a mapping of name to value, got {_cut(params)!r}", value=params)
    return {key: encode_param_sized(key, value) for key, value in params.items()}


def check_params_weight(total: int, keys: Any) -> None:
    """All of a training's params (``total`` bytes) must fit :data:`MAX_PARAMS_BYTES`; ``keys`` would pass it."""
    if total > MAX_PARAMS_BYTES:
        names = ", ".join(str(k) for k in keys)
        raise ValidationError(
            f"params {_cut(names, 80)!r} would bring the training's params to {total:,} bytes as JSON, "
            f"the limit is {MAX_PARAMS_BYTES:,}; store big data as an artifact or a dataset",
            value=next(iter(keys), None),
        )


def flatten(params: Mapping[str, Any], *, sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: how Lightning's ``hparams`` and nested configs are stored."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        nested = flatten(v, sep=sep, prefix=key) if isinstance(v, Mapping) and v else {key: v}
        for flat, value in nested.items():
            if flat in out:
                raise ValidationError(f"params {flat!r} appear twice once nested keys are joined", value=flat)
            out[flat] = value
    return out


def param_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Structured difference between two params dicts (stored JSON values)."""
    added = {k: new[k] for k in sorted(new.keys() - old.keys())}
    removed = {k: old[k] for k in sorted(old.keys() - new.keys())}
    changed = {
        k: {"old": old[k], "new": new[k]} for k in sorted(old.keys() & new.keys()) if not _same_param(old[k], new[k])
    }
    return {"added": added, "removed": removed, "changed": changed}


#: Floats this close are the same param: ``0.1 + 0.2`` against ``0.3`` prints equal and is no change.
PARAM_REL_TOL = 1e-9


def _same_param(a: Any, b: Any) -> bool:
    if type(a) is float and type(b) is float and math.isfinite(a) and math.isfinite(b):
        return math.isclose(a, b, rel_tol=PARAM_REL_TOL, abs_tol=0.0)
    return _json_key(a) == _json_key(b)


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


NAME_MAX = 200  # model and dataset names (the schema's column length)
SHORT_MAX = 255  # the longest indexed string: keys, tag values, host names
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
    return check_chars(name, "model name")


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


TAG_KEY_MAX, TAG_VALUE_MAX, LABEL_MAX = 128, SHORT_MAX, 64  # model_tags.key/value; framework, model_type, stage names


def check_tags(tags: Any) -> dict[str, str]:
    """A model's tags as stored: string keys (1-128 characters) and values (at most 255)."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise ValidationError(f"tags must be a mapping of name to text, got {_cut(tags)!r}", value=tags)
    check_distinct_keys(tags, "tag")
    out = {}
    for k, v in tags.items():
        key, value = str(k), str(v)
        if not key.strip() or key != key.rstrip():
            raise ValidationError(f"tag key {key!r} is empty or ends with whitespace", value=k)
        check_string(key, "tag key", max_chars=TAG_KEY_MAX)
        out[key] = check_string(value, f"tag {key!r}", max_chars=TAG_VALUE_MAX)
    return out


def check_artifact_name(name: Any) -> str:
    """An artifact's name (``model``, ``confusion.png``): 1 to 255 characters, no outer spaces."""
    if not isinstance(name, str) or not name.strip() or len(name) > SHORT_MAX or name != name.strip():
        raise ValidationError(
            f"artifact name must be 1 to {SHORT_MAX} characters without outer spaces, got {_cut(name)!r}", value=name
        )
    check_chars(name, "artifact name")
    return name


def check_label(value: Any, what: str) -> str:
    """A short name (framework, model type, stage): 1 to 64 characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be a string of 1 to {LABEL_MAX} characters, got {value!r}", value=value)
    return check_string(value, what, max_chars=LABEL_MAX)


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
    return check_chars(environment, "environment")


def check_text(name: str, value: Any, limit: int | None = None) -> str | None:
    """An optional free text (reason, endpoint, who, description): None stays None, else a string within ``limit``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, got {value!r}", value=value)
    if limit is not None and len(value) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters: {value[:40]!r}...", value=value)
    return check_string(value, name, max_bytes=TEXT_MAX_BYTES)


def check_limit(limit: Any) -> int:
    """A row limit: a positive integer that fits the databases' 64-bit LIMIT."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 2**63 - 1:
        raise ValidationError(f"limit must be a positive integer below 2**63, got {limit!r}", value=limit)
    return limit


def check_time(at: Any, *, day_end: bool = True) -> dt.datetime:
    """A moment from a timezone-aware datetime, or from a date: the end of that day (UTC), or its start."""
    if isinstance(at, dt.datetime):
        if at.tzinfo is None:
            raise ValidationError(f"naive datetime {at!r}: give a timezone-aware one (UTC)", value=at)
        try:
            return at.astimezone(dt.timezone.utc)
        except OverflowError:
            raise ValidationError(f"{at.isoformat()} is outside the calendar once in UTC", value=at) from None
    if isinstance(at, dt.date):
        return dt.datetime.combine(at, dt.time.max if day_end else dt.time.min, tzinfo=dt.timezone.utc)
    raise ValidationError(f"expected a datetime or a date, got {at!r}", value=at)


def check_dataset_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX or name != name.strip():
        raise ValidationError(
            f"a dataset name is 1 to {NAME_MAX} characters without surrounding spaces, got {name!r}", value=name
        )
    return check_chars(name, "dataset name")


def check_metrics(metrics: Any) -> dict[str, float]:
    """A non-empty mapping of metric name to number, as checked keys and plain floats."""
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValidationError(f"metrics must be a non-empty mapping of name to number, got {metrics!r}", value=metrics)
    return {check_metric_key(k): as_metric_value(v, k) for k, v in metrics.items()}


def env_seconds(name: str, default: float, *, minimum: float = 0.0) -> float:
    """Seconds from environment variable ``name``: ``default`` when unset or blank.

    Anything but a finite number above zero (and at least ``minimum``) is a ConfigurationError
    naming the variable, raised where the setting is read, before anything is recorded.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf and value >= minimum):
        floor = f">= {minimum:g}" if minimum > 0 else "above 0"
        raise ConfigurationError(f"{name} must be a number of seconds {floor}, got {raw!r}", value=raw)
    return value
