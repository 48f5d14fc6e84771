"""Re-exports of the adapter policy, which lives once in :mod:`modeltrail._adapter`."""

from __future__ import annotations

from modeltrail._adapter import ModeltrailWarning, guard, guarded, require, warn_once

__all__ = ["ModeltrailWarning", "guard", "guarded", "require", "warn_once"]
