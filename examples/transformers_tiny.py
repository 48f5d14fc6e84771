"""A tiny BERT sentiment classifier trained with the Hugging Face ``Trainer``, recorded by modeltrail.

Everything is made here: a word-level tokenizer from a 30-word vocabulary, short "reviews" whose label says whether
good words outnumber bad ones, and a 2-layer BERT built from a config. Nothing is downloaded (runs with
``HF_HUB_OFFLINE=1``); on two CPU cores it takes well under a minute. It trains twice with two learning rates, so
the ledger holds versions 1 and 2, each with its loss curve, its checkpoints, the saved model and tokenizer as its
artifact, and ``trainer.evaluate()`` on held-out reviews as an evaluation of the version. The ledger is the
embedded SQLite default (./modeltrail.db) unless MODELTRAIL_URI points elsewhere:
    MODELTRAIL_URI=mysql+pymysql://user:pw@host/db python examples/transformers_tiny.py
"""

from __future__ import annotations

import os
import random
import tempfile
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never reach the network

import numpy as np
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

import modeltrail
from modeltrail.integrations.transformers import ModeltrailCallback

MODEL = "tiny-sentiment"
GOOD = ["good", "great", "fine", "superb", "lovely", "nice", "brilliant", "fun"]
BAD = ["bad", "awful", "poor", "dull", "boring", "weak", "terrible", "sad"]
NEUTRAL = ["the", "film", "plot", "actors", "was", "and", "music", "story", "a", "ending"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LENGTH = 12  # words per review; the tokenizer adds [CLS] and [SEP]


def tokenizer(folder: str) -> BertTokenizerFast:
    """A word-level BERT tokenizer over the example's own vocabulary (written to ``folder``, nothing fetched)."""
    path = os.path.join(folder, "vocab.txt")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(SPECIAL + GOOD + BAD + NEUTRAL) + "\n")
    return BertTokenizerFast.from_pretrained(folder)  # a local folder: read, not downloaded


def reviews(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Sentences of neutral words with one to three good words (label 1) or bad words (label 0) among them."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.choices(GOOD if label else BAD, k=rng.randint(1, 3))
        words += rng.choices(NEUTRAL, k=LENGTH - len(words))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def encode(tok: BertTokenizerFast, texts: list[str], labels: list[int]) -> list[dict[str, torch.Tensor]]:
    batch = tok(texts, padding="max_length", max_length=LENGTH + 2, truncation=True, return_tensors="pt")
    return [
        {"input_ids": batch["input_ids"][i], "attention_mask": batch["attention_mask"][i], "labels": torch.tensor(y)}
        for i, y in enumerate(labels)
    ]


def accuracy(prediction: Any) -> dict[str, float]:
    logits, labels = prediction
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def main() -> None:
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(2)
    work = tempfile.mkdtemp(prefix="modeltrail-transformers-")
    tok = tokenizer(work)
    train = encode(tok, *reviews(256, seed=1))
    held_out = encode(tok, *reviews(128, seed=2))

    for learning_rate in (1e-3, 3e-3):  # the first rate is too small for 64 steps; the second one learns
        torch.manual_seed(7)
        config = BertConfig(
            vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
            num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
        )  # fmt: skip
        args = TrainingArguments(
            output_dir=os.path.join(work, f"lr-{learning_rate}"), num_train_epochs=4, per_device_train_batch_size=16,
            learning_rate=learning_rate, logging_steps=16, eval_strategy="epoch", save_strategy="epoch",
            save_total_limit=1, report_to="none", use_cpu=True, disable_tqdm=True, seed=7,
        )  # fmt: skip
        callback = ModeltrailCallback(MODEL)  # the ledger: MODELTRAIL_URI, else ./modeltrail.db
        trainer = Trainer(
            model=BertForSequenceClassification(config), args=args, train_dataset=train, eval_dataset=held_out,
            processing_class=tok, compute_metrics=accuracy, callbacks=[callback],
        )  # fmt: skip
        trainer.remove_callback(PrinterCallback)  # the per-log dicts; the ledger has them, printed below
        trainer.train()
        metrics = trainer.evaluate()  # recorded as an evaluation of the version train() just made
        assert callback.version is not None
        print(
            f"lr={learning_rate}: training {callback.training_id} -> version {callback.version.number}, "
            f"eval_loss={metrics['eval_loss']:.3f} eval_accuracy={metrics['eval_accuracy']:.3f}"
        )

    tracker = modeltrail.Tracker()
    latest = tracker.versions(MODEL)[-1]
    print(f"\nversion {latest.number} changed: {latest.param_diff['changed']}")
    print(f"its model and tokenizer: {latest.artifact_path}")
    print("training loss every 16 steps (step: loss):")
    for version in tracker.versions(MODEL):
        points = tracker.metric_history(MODEL, "loss", version=version.number)
        print(f"  version {version.number}: " + "  ".join(f"{p.step}: {p.value:.3f}" for p in points))
    print("evaluations (trainer.evaluate() after each train()):")
    for evaluation in tracker.evaluations(MODEL):
        print(
            f"  version {evaluation.version} on {evaluation.dataset}: "
            f"eval_accuracy={evaluation.metrics['eval_accuracy']:.3f} eval_loss={evaluation.metrics['eval_loss']:.3f}"
        )
    tracker.close()


if __name__ == "__main__":
    main()
