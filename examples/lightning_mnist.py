"""A Lightning fit recorded by modeltrail: a tiny CNN on synthetic 8x8 "digits" (no download, seconds on a CPU).

    python examples/lightning_mnist.py                      # ./modeltrail.db
    MODELTRAIL_URI=mysql+pymysql://user:pw@host/db python examples/lightning_mnist.py

It trains twice with a different learning rate, tests each fit (``trainer.test`` after ``fit`` is recorded as an
evaluation of the version the fit made, on a fingerprint of the test data), and prints both versions, their test
scores and what changed between them.
"""

from __future__ import annotations

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import modeltrail
from modeltrail.integrations.lightning import ModeltrailLogger

MODEL = "mnist-cnn"


class TinyCNN(L.LightningModule):
    """Four 3x3 filters and a linear head: enough to learn the synthetic classes, small enough to run anywhere."""

    def __init__(self, lr: float = 0.05, channels: int = 4, optimizer: dict[str, float] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.conv = nn.Conv2d(1, channels, kernel_size=3, padding=1)
        self.head = nn.Linear(channels * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._score(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._score(batch, "test")

    def _score(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}_loss", F.cross_entropy(logits, y), sync_dist=True)
        self.log(f"{stage}_acc", (logits.argmax(1) == y).float().mean(), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        momentum = (self.hparams.optimizer or {}).get("momentum", 0.0)
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=momentum)


def synthetic_digits(n: int = 64, *, seed: int = 0) -> TensorDataset:
    """Images whose class decides which pixel block is bright: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    for i, label in enumerate(y.tolist()):
        row, col = divmod(label, 4)
        x[i, 0, row * 2 : row * 2 + 2, col * 2 : col * 2 + 2] += 1.0
    return TensorDataset(x, y)


def loaders(n: int = 64, batch_size: int = 16) -> tuple[DataLoader, DataLoader]:
    return (
        DataLoader(synthetic_digits(n, seed=0), batch_size=batch_size, shuffle=True),
        DataLoader(synthetic_digits(n // 2, seed=1), batch_size=batch_size),
    )


def train(*, lr: float, uri: str | None = None, max_epochs: int = 2) -> ModeltrailLogger:
    logger = ModeltrailLogger(MODEL, uri=uri, save_dir="lightning_runs")
    trainer = L.Trainer(
        logger=logger,
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
        gradient_clip_val=1.0,
        callbacks=[ModelCheckpoint(monitor="val_loss", save_last=True)],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    train_loader, val_loader = loaders()
    trainer.fit(TinyCNN(lr=lr, optimizer={"momentum": 0.9}), train_loader, val_loader)
    test_loader = DataLoader(synthetic_digits(32, seed=2), batch_size=16)
    trainer.test(dataloaders=test_loader, verbose=False)  # the best checkpoint: an evaluation of the new version
    return logger


def main() -> None:
    L.seed_everything(0, workers=True)
    for lr in (0.05, 0.1):
        logger = train(lr=lr)
        version = logger.model_version
        print(f"fit with lr={lr}: {logger.name}/{logger.version} -> version {version.number if version else '?'}")
    tracker = modeltrail.Tracker()
    for record in tracker.trainings(MODEL)[-2:]:
        best = record.context.get("checkpoint", {}).get("best_path")
        print(
            f"training {record.id}: v{record.version} {record.status} {record.duration_s:.1f}s "
            f"val_loss={record.metrics['val_loss'].last:.3f} best={best}"
        )
    for evaluation in tracker.evaluations(MODEL)[-2:]:
        print(
            f"version {evaluation.version} on {evaluation.dataset} ({(evaluation.dataset_digest or '')[:12]}): "
            f"test_acc={evaluation.metrics['test_acc']:.3f} test_loss={evaluation.metrics['test_loss']:.3f}"
        )
    changed = tracker.versions(MODEL)[-1].param_diff["changed"]
    print("v2 changed:", changed)


if __name__ == "__main__":
    main()
