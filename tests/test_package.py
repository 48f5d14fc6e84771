"""The public surface: a sorted __all__, lazy names, and an import that stays cheap."""

from __future__ import annotations

import subprocess
import sys

import modeltrail


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert modeltrail.__all__ == sorted(modeltrail.__all__)
    for name in modeltrail.__all__:
        assert getattr(modeltrail, name) is not None


def test_import_loads_no_framework_and_no_database_layer() -> None:
    code = (
        "import sys, modeltrail; heavy = [m for m in ('torch', 'sklearn', 'keras', 'lightning', 'numpy', "
        "'sqlalchemy', 'tensorflow', 'jax') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_framework_names_the_extra(monkeypatch) -> None:
    import pytest

    from modeltrail.integrations._common import require

    with pytest.raises(ModuleNotFoundError, match=r'pip install "modeltrail\[keras\]"'):
        require("no_such_framework_module", "keras")
