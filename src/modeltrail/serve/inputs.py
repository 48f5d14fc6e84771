"""What ``POST /predict`` accepts, turned into what the model's ``predict`` takes.

Rows come as a JSON list of lists or of objects (``[{"age": 41, ...}, ...]``), as pandas "split"
records (``{"columns": [...], "data": [[...], ...]}``), or wrapped the way MLflow's scoring server
takes them (``{"dataframe_split": ...}``, ``{"dataframe_records": ...}``, ``{"inputs": ...}``), so a
client of either server works with both. Named columns are put in the order the model was fitted
with (``feature_names_in_``); a missing one is refused by name. A model fitted on named columns gets
a DataFrame, any other an array, so scikit-learn never warns about feature names per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The keys of an object that holds the rows; anything else is read as one row object is not allowed.
WRAPPERS = ("dataframe_split", "dataframe_records", "inputs", "instances")


class BadInput(Exception):
    """A request the server cannot read: answered with ``status`` and this message as JSON."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _rows(payload: Any) -> tuple[list[Any] | None, list[Any]]:
    """(columns or None, rows) from any accepted shape."""
    if isinstance(payload, dict):
        wrapped = [k for k in WRAPPERS if k in payload]
        if wrapped:
            payload = payload[wrapped[0]]
    if isinstance(payload, dict):
        if "data" not in payload:
            raise BadInput(
                'expected rows: a list of lists or of objects, or split records {"columns": [...], "data": [[...]]}'
            )
        columns, data = payload.get("columns"), payload["data"]
        if columns is not None and (
            not isinstance(columns, list) or not all(isinstance(c, (str, int)) for c in columns)
        ):
            raise BadInput(f'"columns" must be a list of names, got {columns!r:.80}')
        if not isinstance(data, list):
            raise BadInput(f'"data" must be a list of rows, got {type(data).__name__}')
        return columns, data
    if not isinstance(payload, list):
        raise BadInput(f"expected a list of rows, got {type(payload).__name__}")
    return None, payload


def read_rows(payload: Any) -> tuple[list[Any] | None, list[list[Any]]]:
    """(columns or None, rows as lists of equal length); a :class:`BadInput` names the first bad row."""
    columns, rows = _rows(payload)
    if not rows:
        raise BadInput("no rows to predict")
    first = rows[0]
    if isinstance(first, dict):
        if columns is not None:
            raise BadInput('rows are objects: "columns" is not needed')
        columns = list(first)
        keys = set(columns)
        out = []
        for n, row in enumerate(rows):
            if not isinstance(row, dict) or set(row) != keys:
                raise BadInput(f"row {n} does not have the same fields as row 0 ({', '.join(map(str, columns))})")
            out.append([row[c] for c in columns])
        return columns, out
    width = len(columns) if columns is not None else len(first) if isinstance(first, list) else None
    for n, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadInput(f"row {n} must be a list or an object, got {row!r:.60}")
        if len(row) != width:
            expected = f"{width} columns" if columns is not None else f"{width} values, as row 0"
            raise BadInput(f"row {n} has {len(row)} values, expected {expected}")
    return columns, rows


def features(payload: Any, fitted_names: Sequence[str] | None) -> Any:
    """The model's input for ``payload``: a DataFrame for a model fitted on named columns, else an array."""
    columns, rows = read_rows(payload)
    if fitted_names is None:
        return _array(rows)
    names = list(fitted_names)
    if columns is None:
        if len(rows[0]) != len(names):
            raise BadInput(f"rows have {len(rows[0])} values, the model takes {len(names)}: {', '.join(names)}", 422)
        columns = names
    missing = [c for c in names if c not in columns]
    if missing:
        raise BadInput(f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}", 422)
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    return frame if list(columns) == names else frame[names]


def _array(rows: list[list[Any]]) -> Any:
    try:
        return np.asarray(rows)
    except ValueError as e:
        raise BadInput(f"rows cannot form a table: {e}") from e


def wants_proba(payload: Any, query: str | None) -> bool:
    """``?proba=true`` or ``"proba": true`` in the body asks for ``predict_proba``."""
    if query is not None:
        return query.lower() in ("1", "true", "yes")
    return isinstance(payload, dict) and payload.get("proba") is True
