"""Turning a verified model file back into a model, by the flavor recorded when it was logged.

Only ever called on a path whose sha256 matched the ledger (``_artifacts.fetch``): that check is what
makes opening a pickle-based format (joblib, a full ``torch.save``) acceptable. Each framework is
imported here, when its model is loaded, and a missing one names the extra to install.
"""

from __future__ import annotations

import importlib
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

            return keras.saving.load_model(path)
        if kind == "lightning":
            cls = _lightning_class(info, label)
            return cls.load_from_checkpoint(str(path), map_location="cpu")
        if kind == "pytorch":
            import torch

            return torch.load(path, map_location="cpu", weights_only=False)
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
