"""A pytest plugin for Lightning's own ``tests/tests_pytorch/loggers/test_all.py``: ModeltrailLogger joins every
logger list its tests are parametrized over (``logger_class``), so Lightning's checks run against it unchanged.

Loaded by ``test_lightning_upstream.py`` as ``-p lightning_upstream_plugin``; nothing of Lightning's is copied.
"""

from __future__ import annotations

from typing import Any

import pytest

from modeltrail.integrations.lightning import ModeltrailLogger


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: Any) -> None:
    """Before pytest expands ``@pytest.mark.parametrize("logger_class", [...])``, add ModeltrailLogger to the list."""
    markers = metafunc.definition.own_markers
    for i, mark in enumerate(markers):
        if mark.name == "parametrize" and mark.args and mark.args[0] == "logger_class":
            values = [*mark.args[1], ModeltrailLogger]
            markers[i] = pytest.mark.parametrize("logger_class", values, **mark.kwargs).mark
