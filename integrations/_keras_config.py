"""What a Keras model and its ``fit`` show: the params :class:`~.keras.ModeltrailCallback` records.

Params: ``epochs`` and ``steps`` (batches per epoch) from ``self.params``; the other ``fit`` arguments
(``batch_size`` — the effective one when Keras picked it —, ``validation_split``, ``shuffle``,
``initial_epoch``, ``steps_per_epoch``, ``validation_steps``, ``validation_batch_size``, ``validation_freq``,
and whether ``class_weight`` / ``sample_weight`` / validation were used) read from the ``fit`` frame that
calls ``on_train_begin``; ``optimizer.*`` (``optimizer.get_config()`` flattened, a learning-rate schedule as
``optimizer.learning_rate.class_name`` plus its config; not the per-process ``name``);
``num_params`` (``.trainable``, ``.non_trainable``); ``model.class``, ``model.name`` (unless Keras made it up,
as ``sequential_3``), ``loss``, ``metrics`` (compiled names), ``callbacks`` (the other callbacks), ``keras.backend``.

What cannot be observed: ``self.params`` carries only ``epochs``, ``steps`` and ``verbose``; everything else
comes from the ``fit`` frame, so a custom loop that drives a ``CallbackList`` itself records only those two.
Generators, ``PyDataset`` and ``DataLoader`` inputs are not fingerprinted, and ``validation_data`` given
next to ``validation_split`` cannot be told apart from a split (``validation`` says only that fit validated).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from modeltrail._adapter import find_in_callers, require
from modeltrail._values import flatten


def _import_keras() -> Any:
    try:
        return require("keras", "keras")
    except ModuleNotFoundError as e:
        cause = e.__cause__
        if isinstance(cause, ModuleNotFoundError) and cause.name and cause.name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(
                "keras is installed but its backend is TensorFlow, which is not; set KERAS_BACKEND=torch "
                "(or jax) in the environment before keras is first imported"
            ) from e
        raise


keras: Any = _import_keras()
np: Any = require("numpy", "keras")

#: ``fit`` arguments read from its frame, recorded under their own names.
FIT_ARGS = (
    "batch_size",
    "validation_split",
    "shuffle",
    "initial_epoch",
    "steps_per_epoch",
    "validation_steps",
    "validation_batch_size",
    "validation_freq",
)
_FIT_FRAME_DEPTH = 12


def fit_arguments(model: Any) -> dict[str, Any]:
    """The locals of the ``fit`` call of ``model`` that is running the callbacks, or ``{}`` outside one."""

    def of_fit(frame: Any) -> dict[str, Any] | None:
        if frame.f_code.co_name == "fit" and frame.f_locals.get("self") is model:
            return dict(frame.f_locals)
        return None

    return find_in_callers(of_fit, depth=_FIT_FRAME_DEPTH) or {}


def fit_params(params: Mapping[str, Any] | None, fit: Mapping[str, Any], own: Any = None) -> dict[str, Any]:
    """The fit settings: Keras's ``params`` (``epochs``, ``steps``) plus the arguments found in the fit frame."""
    out: dict[str, Any] = {}
    params = params or {}
    for key in ("epochs", "steps"):
        if params.get(key) is not None:
            out[key] = params[key]
    if not fit:
        return out
    for key in FIT_ARGS:
        if key in fit:
            out[key] = fit[key]
    if fit.get("batch_size") is None:
        adapter = getattr(fit.get("epoch_iterator"), "data_adapter", None)
        out["batch_size"] = getattr(adapter, "batch_size", None)
    out["class_weight"] = fit.get("class_weight") is not None
    out["sample_weight"] = fit.get("sample_weight") is not None
    out["validation"] = fit.get("validation_data") is not None
    others = getattr(fit.get("callbacks"), "callbacks", None)
    if others is not None:
        skip = (keras.callbacks.History, keras.callbacks.ProgbarLogger)
        out["callbacks"] = [type(c).__name__ for c in others if c is not own and not isinstance(c, skip)]
    return out


def model_params(model: Any) -> dict[str, Any]:
    trainable = sum(math.prod(int(n) for n in w.shape) for w in model.trainable_weights)
    frozen = sum(math.prod(int(n) for n in w.shape) for w in model.non_trainable_weights)
    out = {
        "model.class": type(model).__name__,
        "num_params": trainable + frozen,
        "num_params.trainable": trainable,
        "num_params.non_trainable": frozen,
        "keras.backend": keras.backend.backend(),
        "loss": name_of(getattr(model, "loss", None)),
    }
    if not is_auto_name(model.name, type(model)):
        out["model.name"] = model.name
    return out


def metric_params(model: Any) -> dict[str, Any]:
    """The compiled metrics by name, from ``get_compile_config()`` (what ``compile(metrics=...)`` was given)."""
    compiled = model.get_compile_config() if getattr(model, "compiled", False) else None
    if not isinstance(compiled, Mapping):
        return {}
    groups = [name_of_serialized(compiled.get(k)) for k in ("metrics", "weighted_metrics")]
    return {"metrics": [n for group in groups if group for n in (group if isinstance(group, list) else [group])]}


def optimizer_params(optimizer: Any) -> dict[str, Any]:
    """``optimizer.get_config()`` as ``optimizer.*`` params; a schedule as its class name plus its config."""
    if optimizer is None:
        return {}
    config = plain(optimizer.get_config())
    config.pop("name", None)  # a variable scope, uniquified per process (adam, adam_1...): noise in param diffs
    return {"optimizer.class": type(optimizer).__name__, **flatten(config, prefix="optimizer")}


def current_learning_rate(optimizer: Any) -> float | None:
    if optimizer is None:
        return None
    value = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    return tidy_float(value)


def numbers(logs: Mapping[str, Any] | None) -> dict[str, float]:
    """The scalar numbers of a Keras logs dict (anything else, such as arrays, is left out)."""
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        if isinstance(value, bool) or not isinstance(key, str):
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
        elif getattr(value, "shape", None) == () and hasattr(value, "item"):
            out[key] = float(value.item())
    return out


# --------------------------------------------------------------- value tidying
def tidy_float(value: float) -> float:
    """A float32 value as its shortest decimal: 0.001, not 0.0010000000474974513 (Keras stores float32)."""
    if not math.isfinite(value) or abs(value) > 3.0e38:
        return value
    single = np.float32(value)
    return float(str(single)) if float(single) == value else value


def plain(value: Any) -> Any:
    """A Keras-serialized config made readable: ``{"class_name": C, "config": {...}}`` becomes ``{class_name, ...}``."""
    if isinstance(value, Mapping):
        if "class_name" in value and "config" in value:
            inner = value["config"]
            out: dict[str, Any] = {"class_name": value["class_name"]}
            if isinstance(inner, Mapping):
                out.update({str(k): plain(v) for k, v in inner.items()})
            else:
                out["config"] = plain(inner)
            return out
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return tidy_float(value)
    return value


def name_of(obj: Any) -> Any:
    """A loss or metric by name: strings as given, objects by ``name``, functions by ``__name__``."""
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): name_of(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [name_of(v) for v in obj]
    return getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__


def name_of_serialized(obj: Any) -> Any:
    """Names out of ``get_compile_config()`` entries, which are strings or serialized objects."""
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Mapping):
        if "class_name" in obj:
            config = obj.get("config")
            if isinstance(config, Mapping) and config.get("name"):
                return str(config["name"])
            return str(config) if isinstance(config, str) else str(obj["class_name"])
        return {str(k): name_of_serialized(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [name_of_serialized(v) for v in obj]
    return name_of(obj)


def is_auto_name(name: str, cls: type) -> bool:
    """Whether ``name`` is what Keras made up for an unnamed ``cls`` (``sequential``, ``sequential_3``)."""
    snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", cls.__name__)).lower()
    return re.fullmatch(rf"{re.escape(snake)}(_\d+)?", name) is not None
