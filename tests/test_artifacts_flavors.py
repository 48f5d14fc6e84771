"""Every flavor loads back what was logged: the adapters' own models (sklearn, Keras, Lightning), skops, PyTorch.

Predictions of the loaded model equal the trained one's, number for number.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is first imported; TensorFlow is not installed

import lightning.pytorch as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import modeltrail


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture
def ledger(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[modeltrail.Tracker]:
    monkeypatch.setenv("MODELTRAIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MODELTRAIL_ARTIFACTS", raising=False)
    t = modeltrail.Tracker(sqlite_url, artifacts=str(tmp_path / "store"))
    yield t
    t.close()


def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 4)).astype("float32")
    return X, (X[:, 0] > 0).astype(int)


def test_sklearn_adapter_model_loads_back(ledger: modeltrail.Tracker, tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    from modeltrail.integrations.sklearn import TrackedEstimator

    X, y = xy()
    first = TrackedEstimator(RandomForestClassifier(n_estimators=5, random_state=0), model="rf", tracker=ledger)
    first.fit(X, y)
    second = TrackedEstimator(RandomForestClassifier(n_estimators=9, random_state=0), model="rf", tracker=ledger)
    second.fit(X, y)
    model = ledger.artifacts("rf", version=1)[0]
    assert (model.name, model.flavor) == ("model", "sklearn")
    assert ledger.load_model("rf", version=1).n_estimators == 5  # the retrain did not overwrite it
    np.testing.assert_array_equal(ledger.load_model("rf").predict_proba(X), second.predict_proba(X))


def test_skops_and_pytorch_flavors(ledger: modeltrail.Tracker, tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    X, y = xy()
    clf = LogisticRegression().fit(X, y)
    sio.dump(clf, tmp_path / "clf.skops")
    net = torch.nn.Linear(4, 2)
    torch.save(net, tmp_path / "net.pt")
    with ledger.training("lr") as run:
        run.log_artifact(tmp_path / "clf.skops", name="model", flavor="skops")
    with ledger.training("net") as run:
        run.log_artifact(tmp_path / "net.pt")  # the flavor from the file name
    np.testing.assert_array_equal(ledger.load_model("lr").predict_proba(X), clf.predict_proba(X))
    assert ledger.artifacts("net")[0].flavor == "pytorch"
    loaded = ledger.load_model("net")
    with torch.no_grad():
        assert torch.equal(loaded(torch.from_numpy(X)), net(torch.from_numpy(X)))


def test_keras_adapter_model_loads_back(ledger: modeltrail.Tracker, tmp_path: Path) -> None:
    import keras

    from modeltrail.integrations.keras import ModeltrailCallback

    X, y = xy()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=1, verbose=0, callbacks=[ModeltrailCallback("dense", tracker=ledger)])
    artifact = ledger.artifacts("dense")[0]
    assert (artifact.name, artifact.flavor) == ("model", "keras")
    np.testing.assert_allclose(ledger.load_model("dense").predict(X, verbose=0), model.predict(X, verbose=0))


def test_lightning_adapter_checkpoint_loads_with_its_module_class(
    sqlite_url: str, ledger: modeltrail.Tracker, tmp_path: Path
) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    from modeltrail.integrations.lightning import ModeltrailLogger

    X, y = xy()
    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=16)
    module = Tiny()
    trainer = L.Trainer(
        logger=ModeltrailLogger("tiny", uri=sqlite_url, save_dir=str(tmp_path / "runs")),
        max_epochs=1, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[ModelCheckpoint(save_last=True)],
    )  # fmt: skip
    trainer.fit(module, loader)
    artifact = ledger.artifacts("tiny")[0]
    assert (artifact.name, artifact.flavor) == ("model", "lightning")
    assert artifact.info == {"class": f"{Tiny.__module__}.{Tiny.__qualname__}"}
    loaded = ledger.load_model("tiny")
    assert isinstance(loaded, Tiny)
    module.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded(torch.from_numpy(X)), module(torch.from_numpy(X)))
