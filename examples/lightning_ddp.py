"""The Lightning logger under ``strategy="ddp"``: two CPU processes (gloo), one modeltrail training.

    MODELTRAIL_URI=sqlite:///ddp.db python examples/lightning_ddp.py

Lightning re-runs this script for rank 1; both ranks print the logger's name and version (they must agree)
and only rank 0 writes to the ledger. ``--report DIR`` also writes what each rank saw to ``DIR/rank<N>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import lightning.pytorch as L
from lightning.pytorch.callbacks import ModelCheckpoint

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lightning_mnist import TinyCNN, loaders

from modeltrail.integrations.lightning import ModeltrailLogger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="mnist-cnn-ddp")
    parser.add_argument("--max-epochs", type=int, default=2)
    parser.add_argument("--report", help="directory for one rank<N>.json per rank")
    args = parser.parse_args()

    L.seed_everything(0, workers=True)
    logger = ModeltrailLogger(args.model, save_dir="lightning_runs")
    trainer = L.Trainer(
        logger=logger,
        strategy="ddp",
        accelerator="cpu",
        devices=2,
        max_epochs=args.max_epochs,
        log_every_n_steps=1,
        callbacks=[ModelCheckpoint(monitor="val_loss")],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    train_loader, val_loader = loaders(n=64, batch_size=8)
    trainer.fit(TinyCNN(lr=0.05), train_loader, val_loader)
    seen = {
        "rank": trainer.global_rank,
        "name": logger.name,
        "version": logger.version,
        "training": logger.training.id if logger.training is not None else None,
        "model_version": logger.model_version.number if logger.model_version is not None else None,
    }
    print(json.dumps(seen), flush=True)
    if args.report:
        with open(os.path.join(args.report, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(seen, f)


if __name__ == "__main__":
    main()
