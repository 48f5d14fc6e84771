"""What a Hugging Face ``Trainer`` shows: the params, context, dataset and model type the callback records.

* ``TrainingArguments`` (:func:`argument_params`): every init field as a param under its own name
  (``learning_rate``, ``num_train_epochs``...), nested settings flattened (``lr_scheduler_kwargs.power``), enums by
  value. Where the run writes and how it reports (``output_dir``, ``logging_dir``, ``run_name``, ``report_to``,
  ``hub_model_id``...) are facts about the run, not hyperparameters: they go to the context, so changing a folder
  never shows as a param change between versions. A field named as a credential (``hub_token``...) is dropped,
  never stored, not even masked.
* the model config (:func:`config_params`): ``config.to_dict()`` under ``config.`` (``config.hidden_size``),
  nested sub-configs flattened; the label maps become ``config.num_labels`` (the names go to the context);
  ``transformers_version`` and ``_name_or_path`` go to the context.
* :func:`dataset_of`: the identity of a ``datasets.Dataset`` (its fingerprint), a ``TensorDataset`` or an in-memory
  list of examples (their content); other datasets (generators, lazily loading ones) are not read.
* :func:`model_type_of`: the kind of model from its ``problem_type`` and architecture (``language-model`` for
  ``*LMHeadModel``, ``*ForCausalLM``...; ``classifier`` for ``*ForSequenceClassification``...).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from modeltrail import _adapter as core
from modeltrail._dataset import Dataset
from modeltrail._secrets import is_secret_key
from modeltrail._values import flatten

#: ``TrainingArguments`` fields that say where the run writes and how it reports, not how it trains.
RUN_FIELDS = frozenset(
    {
        "output_dir", "logging_dir", "run_name", "report_to", "hub_model_id", "hub_strategy", "hub_private_repo",
        "hub_revision", "push_to_hub", "push_to_hub_model_id", "push_to_hub_organization", "resume_from_checkpoint",
        "project", "trackio_space_id", "disable_tqdm", "overwrite_output_dir",
    }
)  # fmt: skip
#: Config entries that are not the architecture's hyperparameters.
CONFIG_CONTEXT = frozenset({"transformers_version", "_name_or_path", "_commit_hash", "architectures"})
LABEL_MAPS = frozenset({"id2label", "label2id"})
MAX_LABEL_NAMES = 256  # more label names than this are left out of the context
MAX_LISTED_ROWS = 200_000  # an in-memory list of examples longer than this is not hashed (a pass over it all)


def plain(value: Any) -> Any:
    """A settings value as JSON-friendly data: enums by value, dataclasses and objects with ``to_dict`` as dicts."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        try:
            return plain(to_dict())
        except Exception:  # an object whose to_dict needs arguments: kept as it is
            return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _settings(args: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(args) and not isinstance(args, type):
        return {f.name: getattr(args, f.name, None) for f in dataclasses.fields(args) if f.init}
    return dict(vars(args))


def argument_params(args: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, context)`` of a ``TrainingArguments``: see the module docstring for which goes where."""
    params: dict[str, Any] = {}
    run: dict[str, Any] = {}
    for name, value in _settings(args).items():
        if name.startswith("_") or is_secret_key(name):
            continue  # private state, and credentials: never stored
        target = run if name in RUN_FIELDS else params
        target[name] = _without_secrets(plain(value))
    return flatten(params), run


def _without_secrets(value: Any) -> Any:
    """Nested settings (``fsdp_config``, ``accelerator_config``...) lose their credential-named entries."""
    if isinstance(value, Mapping):
        return {k: _without_secrets(v) for k, v in value.items() if not is_secret_key(str(k))}
    return value


def config_params(config: Any, *, prefix: str = "config") -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, context)`` of a ``PretrainedConfig``: ``config.*`` params, version and labels as context."""
    raw = plain(config.to_dict()) if hasattr(config, "to_dict") else {}
    context: dict[str, Any] = {k: raw[k] for k in sorted(CONFIG_CONTEXT & set(raw)) if raw[k] not in (None, "")}
    labels = raw.get("id2label")
    if isinstance(labels, Mapping) and 0 < len(labels) <= MAX_LABEL_NAMES:
        context["labels"] = [str(labels[k]) for k in sorted(labels, key=_label_order)]
    cleaned = _config_entries(raw)
    if isinstance(labels, Mapping):
        cleaned["num_labels"] = len(labels)
    return flatten(cleaned, prefix=prefix), context


def _config_entries(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in CONFIG_CONTEXT or key in LABEL_MAPS or is_secret_key(key):
            continue
        out[key] = _config_entries(value) if isinstance(value, Mapping) else value
    return out


def _label_order(key: Any) -> tuple[int, Any]:
    try:
        return (0, int(key))
    except (TypeError, ValueError):
        return (1, str(key))


def numbers(logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The numeric entries of a ``Trainer`` log (numbers, numpy and torch scalars); text and flags are skipped."""
    out: dict[str, Any] = {}
    for key, value in (logs or {}).items():
        if isinstance(value, (bool, str, bytes)) or value is None:
            continue
        if isinstance(value, (int, float)) or getattr(value, "ndim", None) == 0 or hasattr(value, "item"):
            out[str(key)] = value
    return out


# ------------------------------------------------------------------ datasets
def dataset_of(data: Any, name: str) -> Dataset | None:
    """The identity of what the Trainer was fed, where it can be known without loading anything; else None."""
    if data is None:
        return None
    fingerprint = getattr(data, "_fingerprint", None)
    if isinstance(fingerprint, str) and fingerprint:  # a ``datasets.Dataset``: its content-and-history fingerprint
        columns = getattr(data, "column_names", None)
        return Dataset(
            name=name,
            digest=hashlib.sha256(f"datasets:{fingerprint}".encode()).hexdigest(),
            n_rows=len(data),
            features=tuple(str(c) for c in columns) if isinstance(columns, list) else None,
            source=f"datasets.Dataset fingerprint {fingerprint}",
        )
    tensors = getattr(data, "tensors", None)
    if isinstance(tensors, tuple) and tensors:  # torch.utils.data.TensorDataset
        return _columns_dataset({str(i): t for i, t in enumerate(tensors)}, name, len(tensors[0]), features=None)
    if isinstance(data, (list, tuple)) and 0 < len(data) <= MAX_LISTED_ROWS and isinstance(data[0], Mapping):
        return _examples_dataset(data, name)
    return None


def _columns_dataset(columns: Mapping[str, Any], name: str, n_rows: int, features: tuple[str, ...] | None) -> Dataset:
    h = hashlib.sha256()
    for key in sorted(columns):
        part = Dataset.from_arrays(columns[key], name=name)
        h.update(f"{key}\0{part.digest}\n".encode())
    return Dataset(name=name, digest=h.hexdigest(), n_rows=n_rows, features=features)


def _examples_dataset(examples: Sequence[Mapping[str, Any]], name: str) -> Dataset | None:
    """A list of examples (``{"input_ids": ..., "labels": ...}``): one digest over every value, in order."""
    import numpy as np

    keys = sorted(str(k) for k in examples[0])
    h = hashlib.sha256(repr(keys).encode())
    for example in examples:
        if not isinstance(example, Mapping) or sorted(str(k) for k in example) != keys:
            return None  # rows of different shapes: not one table
        for key in keys:
            value = example[key]
            if hasattr(value, "detach") and hasattr(value, "cpu"):
                value = value.detach().cpu().numpy()
            arr = np.asarray(value)
            if arr.dtype.kind == "O":
                return None
            h.update(f"{arr.shape}{arr.dtype.str}".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
    return Dataset(name=name, digest=h.hexdigest(), n_rows=len(examples), features=tuple(keys))


# ---------------------------------------------------------------- model type
def model_type_of(model: Any) -> str | None:
    """The kind of model (the shared vocabulary): from its ``problem_type``, then its architecture's name."""
    config = getattr(model, "config", None)
    problem = getattr(config, "problem_type", None)
    architectures = getattr(config, "architectures", None) or []
    hints = [problem, type(model).__name__, *architectures]
    shared = getattr(core, "infer_model_type", None)  # the one vocabulary, where the core has it
    if shared is not None:
        return shared(*hints)
    return next((kind for kind in map(_kind_of, hints) if kind is not None), None)


#: Architecture and task words -> kind, for a core without the shared vocabulary helper.
_KINDS = (
    ("regression", "regressor"),
    ("classification", "classifier"),
    ("causallm", "language-model"),
    ("maskedlm", "language-model"),
    ("lmhead", "language-model"),
    ("seq2seqlm", "language-model"),
    ("conditionalgeneration", "language-model"),
    ("objectdetection", "object-detector"),
    ("segmentation", "segmenter"),
)


def _kind_of(hint: Any) -> str | None:
    if not isinstance(hint, str):
        return None
    squashed = hint.replace("_", "").replace("-", "").lower()
    return next((kind for word, kind in _KINDS if word in squashed), None)
