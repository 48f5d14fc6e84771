"""The standard record of a model version, shared by export and import: its name and its JSON Schema.

The schema ships as ``modeltrail/schemas/model-version.schema.json``; see :mod:`.export` for what a
document holds and :mod:`.imports` for how one is loaded. Documents are checked with the
``jsonschema`` library (the ``schema`` extra), imported only when a document is checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from .._errors import ConfigurationError

FORMAT = "modeltrail.model-version"
FORMAT_VERSION = 1
SCHEMA_FILE = "model-version.schema.json"


@lru_cache(maxsize=1)
def json_schema() -> dict[str, Any]:
    """The JSON Schema of an exported document, as shipped in the package."""
    text = resources.files("modeltrail").joinpath("schemas").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return dict(json.loads(text))


def schema_errors(document: Any, spec: Mapping[str, Any] | None = None) -> list[str]:
    """Where ``document`` breaks the JSON Schema, as ``path: problem`` lines (empty when it conforms).

    Paths are JSONPath-like (``$.training.metrics.loss[0][1]``), problems in plain words.
    """
    validator = _validator() if spec is None else _validator_class()(dict(spec))
    errors = sorted(validator.iter_errors(document), key=lambda e: (e.json_path, e.message))
    return [f"{error.json_path}: {problem}" for error in errors for problem in _problems(error)]


def _validator_class() -> Any:
    try:
        import jsonschema
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
        raise ConfigurationError('checking documents needs jsonschema: pip install "modeltrail[schema]"') from e
    base = jsonschema.Draft202012Validator
    # JSON Schema counts 1.0 as an integer; a step or a size must be a real int here.
    integer = base.TYPE_CHECKER.redefine("integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))
    return jsonschema.validators.extend(base, type_checker=integer)


@lru_cache(maxsize=1)
def _validator() -> Any:
    return _validator_class()(json_schema())


def _problems(error: Any) -> list[str]:
    """One validation error in the words of the modeltrail schema checks."""
    kind, rule, value = error.validator, error.validator_value, error.instance
    if kind == "required":  # one error per missing key, worded "'key' is a required property"
        return [error.message.replace(" is a required property", " is missing")]
    if kind == "additionalProperties":
        known = error.schema.get("properties", {})
        return [f"unexpected key {key!r}" for key in value if key not in known]
    if kind in ("anyOf", "oneOf"):
        return ["matches none of the allowed forms"]
    if kind == "type":
        kinds = rule if isinstance(rule, list) else [rule]
        return [f"must be {' or '.join(kinds)}, got {type(value).__name__}"]
    words = {
        "const": f"must be {rule!r}",
        "enum": f"must be one of {rule}",
        "minLength": f"shorter than {rule} characters",
        "maxLength": f"longer than {rule} characters",
        "minimum": f"less than {rule}",
        "minItems": f"fewer than {rule} items",
        "maxItems": f"more than {rule} items",
    }
    return [words.get(kind, error.message)]
