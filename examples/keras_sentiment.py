"""A Keras sentiment model (word embeddings, averaged) on synthetic reviews, recorded by modeltrail.

Each review is 20 tokens of neutral words with two to four sentiment words mixed in; its label is whether the
positive ones (ids 1-10) outnumber the negative ones (ids 11-20), and some reviews carry a word of the other
side. The model must learn which words carry sentiment: validation accuracy rises from epoch to epoch.
Trains twice with two learning rates, so the ledger holds versions 1 and 2 and the param diff between them.
Needs no download and runs on the embedded SQLite default (./modeltrail.db) unless MODELTRAIL_URI points elsewhere:
    MODELTRAIL_URI=mysql+pymysql://user:pw@host/db python examples/keras_sentiment.py
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported; TensorFlow is not needed

import keras
import numpy as np

import modeltrail
from modeltrail.integrations.keras import ModeltrailCallback

MODEL = "sentiment"
VOCAB, LENGTH, SAMPLES, EPOCHS = 200, 20, 1200, 3
POSITIVE, NEGATIVE = range(1, 11), range(11, 21)  # the sentiment words; ids 21 and up are neutral


def synthetic_reviews(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Neutral token sequences with 2-4 sentiment words; label 1 when the positive ones are the majority."""
    rng = np.random.default_rng(seed)
    x = rng.integers(NEGATIVE.stop, VOCAB, size=(SAMPLES, LENGTH))
    y = np.zeros(SAMPLES, dtype="float32")
    for i in range(SAMPLES):
        count = int(rng.integers(2, 5))
        own, other = (POSITIVE, NEGATIVE) if rng.random() < 0.5 else (NEGATIVE, POSITIVE)
        words = rng.choice(own, size=count)
        if count > 2 and rng.random() < 0.3:
            words[0] = rng.choice(other)  # a dissenting word; still a majority of ``own``
        x[i, rng.choice(LENGTH, size=count, replace=False)] = words
        y[i] = float(own is POSITIVE)
    return x, y.reshape(-1, 1)


def build(learning_rate: float) -> keras.Model:
    model = keras.Sequential(
        [
            keras.layers.Input((LENGTH,), dtype="int32"),
            keras.layers.Embedding(VOCAB, 16),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="sentiment",
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    keras.utils.set_random_seed(7)
    x, y = synthetic_reviews()
    for learning_rate in (1e-3, 5e-3):
        model = build(learning_rate)
        callback = ModeltrailCallback(model=MODEL)  # the ledger: MODELTRAIL_URI, else ./modeltrail.db
        model.fit(x, y, epochs=EPOCHS, batch_size=32, validation_split=0.25, callbacks=[callback], verbose=0)
        assert callback.version is not None
        print(f"lr={learning_rate}: training {callback.training_id} -> version {callback.version.number}")

    tracker = modeltrail.Tracker()
    versions = tracker.versions(MODEL)[-2:]
    print(f"version {versions[-1].number} changed: {versions[-1].param_diff['changed']}")
    for version in versions:
        curve = tracker.metric_history(version.training_id, "val_accuracy")
        print(f"version {version.number} val_accuracy by epoch: " + ", ".join(f"{p.value:.3f}" for p in curve))


if __name__ == "__main__":
    main()
