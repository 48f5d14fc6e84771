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

    from modeltrail._adapter import require

    with pytest.raises(ModuleNotFoundError, match=r'pip install "modeltrail\[keras\]"'):
        require("no_such_framework_module", "keras")


def test_every_exported_name_is_documented() -> None:
    """A name in __all__ is a promise: it exists and says what it is for."""
    undocumented = []
    for name in modeltrail.__all__:
        value = getattr(modeltrail, name)
        if name == "__version__":
            assert isinstance(value, str) and value
            continue
        doc = value.__dict__.get("__doc__") if isinstance(value, type) else getattr(value, "__doc__", None)
        if not (doc or "").strip():
            undocumented.append(name)
    assert undocumented == []


def test_every_record_and_error_type_the_api_uses_is_exported() -> None:
    """Whatever the API returns or raises can be named by a user (for type hints and except clauses)."""
    import inspect

    from modeltrail import _errors, _records

    for module in (_records, _errors):
        defined = {
            name
            for name, value in vars(module).items()
            if inspect.isclass(value) and value.__module__ == module.__name__ and not name.startswith("_")
        }
        assert defined, module.__name__
        assert defined <= set(modeltrail.__all__), sorted(defined - set(modeltrail.__all__))


def test_modules_are_private_except_the_entry_points() -> None:
    """The public boundary shows in file names: only the API, the CLI, the dashboard, the model server and the
    adapters are public."""
    from pathlib import Path

    package = Path(modeltrail.__file__).parent
    public = sorted(
        p.stem if p.is_file() else p.name
        for p in package.iterdir()
        if not p.name.startswith(("_", ".")) and (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
    )
    assert public == ["cli", "integrations", "serve", "ui"]


def test_every_package_folder_is_listed_for_setuptools() -> None:
    """A folder missing from pyproject's `packages` would be left out of a wheel (and warned about on install)."""
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    source = root / "src" / "modeltrail"
    found = {"modeltrail", "modeltrail.integrations"} | {
        "modeltrail." + ".".join(d.relative_to(source).parts)
        for d in source.rglob("*")
        if d.is_dir() and d.name != "__pycache__" and any(f.is_file() for f in d.iterdir())
    }
    assert listed == found
