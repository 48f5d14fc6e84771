"""Lightning's own logger tests (``tests/tests_pytorch/loggers/test_all.py``) with ModeltrailLogger in their lists.

Lightning's files are not copied here and nothing is downloaded: point ``MODELTRAIL_LIGHTNING_CHECKOUT`` at a
local checkout of Lightning at the installed release's tag (its ``tests/`` directory and ``pyproject.toml`` are
what is read), e.g.::

    git clone --branch 2.6.5 https://github.com/Lightning-AI/pytorch-lightning /tmp/pl
    MODELTRAIL_LIGHTNING_CHECKOUT=/tmp/pl pytest tests/integrations/test_lightning_upstream.py

Only the ModeltrailLogger cases run (the other loggers need their own packages). Without the variable the test
is skipped; ``test_lightning_contract.py`` reproduces each of those checks in this repository.
Lightning's harness fails a test that leaves a thread running or an environment variable set.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")

import modeltrail

CHECKOUT = os.environ.get("MODELTRAIL_LIGHTNING_CHECKOUT")
HERE = Path(__file__).resolve().parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHECKOUT, reason="MODELTRAIL_LIGHTNING_CHECKOUT (a Lightning checkout) is not set"),
]


def test_lightnings_logger_tests_pass_with_modeltrail_logger(tmp_path: Path) -> None:
    tests_dir = Path(CHECKOUT or ".") / "tests"
    target = tests_dir / "tests_pytorch" / "loggers" / "test_all.py"
    assert target.is_file(), f"{target} is missing: MODELTRAIL_LIGHTNING_CHECKOUT must be a Lightning checkout"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    env = {**os.environ, "MODELTRAIL_URI": url, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    env.pop("MODELTRAIL_LIGHTNING_RUN_IDS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(target), "-k", "ModeltrailLogger", "-p", "lightning_upstream_plugin",
         "-p", "no:cacheprovider", "-p", "no:xdist", "-v", "--color=no"],
        cwd=tests_dir, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    ours = dict(re.findall(r"test_all\.py::(\w+\[ModeltrailLogger\]) (\w+)", out))
    assert set(ours) == {
        "test_loggers_fit_test_all[ModeltrailLogger]",
        "test_loggers_pickle_all[ModeltrailLogger]",
        "test_logger_initialization[ModeltrailLogger]",
    }, out[-3000:]
    assert set(ours.values()) == {"PASSED"}, out[-6000:]
    assert proc.returncode == 0, out[-6000:]
    # and the fit it ran is in the ledger: one training, its test an evaluation of its version
    with modeltrail.Tracker(url) as tracker:
        [fitted] = [r for r in tracker.trainings() if r.model == "CustomModel"]
        assert fitted.status == "finished" and fitted.version == 1
        [evaluation] = tracker.evaluations("CustomModel")
        assert evaluation.metrics == {"test_loss": 2.0}
