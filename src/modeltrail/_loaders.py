"""Turning a verified model file back into a model, by the flavor recorded when it was logged.

Only ever called on a path whose sha256 matched the ledger (``_artifacts.fetch``): that check is what
makes opening a pickle-based format (joblib, a full ``torch.save``) acceptable. Each framework is
imported here, when its model is loaded, and a missing one names the extra to install.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._artifacts import flavor_of
from ._errors import ConfigurationError, ValidationError, install_hint


def load(path: Path, flavor: str | None, info: Mapping[str, Any] | None, *, label: str, name: str = "") -> Any:
    """The model in ``path`` (verified already); ``file`` (or an unknown kind of file) returns the path.

    ``name`` is the file's name when it was logged (the cache names files by digest)."""
    kind = flavor_of(name or path.name, flavor, info)
    try:
        if kind == "sklearn":
            import joblib

            return joblib.load(path)
        if kind == "skops":
            import skops.io as sio

            # The ledger's sha256 matched, so the types this file names are the ones that were logged.
            return sio.load(path, trusted=sio.get_untrusted_types(file=path))
        if kind == "keras":
            import keras

            if path.suffix != ".keras":  # the cache names files by digest; Keras reads a name ending .keras
                with tempfile.TemporaryDirectory(prefix="modeltrail-keras-") as folder:
                    named = Path(folder) / "model.keras"
                    named.symlink_to(path)
                    return keras.saving.load_model(named)
            return keras.saving.load_model(path)
        if kind == "lightning":
            cls = _lightning_class(info, label)
            return cls.load_from_checkpoint(str(path), map_location="cpu")
        if kind == "pytorch":
            import torch

            return torch.load(path, map_location="cpu", weights_only=False)
        if kind == "xgboost":
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(_named(path, name or ".json"))  # XGBoost tells JSON from UBJ by the file name
            return booster
        if kind == "lightgbm":
            import lightgbm

            return lightgbm.Booster(model_file=str(path))
    except ImportError as e:
        hint = install_hint(e) or f"install {e.name}"
        raise ConfigurationError(f"loading {label} (flavor {kind}) needs {e.name}: {hint}", value=kind) from e
    return path


def _lightning_class(info: Mapping[str, Any] | None, label: str) -> Any:
    path = (info or {}).get("class")
    if not isinstance(path, str) or "." not in path:
        raise ValidationError(
            f"{label} is a Lightning checkpoint without its LightningModule class recorded "
            '(log it with info={"class": "package.module.Class"})',
            value=label,
        )
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigurationError(
            f"{label} needs the LightningModule {path}, which cannot be imported here: {e}", value=path
        ) from e


def _named(path: Path, name: str) -> str:
    """``path`` under a name ending like ``name`` (the cache names files by digest; some loaders read the suffix)."""
    suffix = Path(name).suffix or path.suffix
    if path.suffix == suffix:
        return str(path)
    named = path.with_name(f"{path.name}{suffix}")
    if not named.exists():
        named.symlink_to(path.name)
    return str(named)
