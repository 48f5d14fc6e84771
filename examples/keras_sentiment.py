"""A Keras sentiment model (Embedding + LSTM) on synthetic token sequences, recorded by modeltrail.

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

MODEL = "sentiment-lstm"
VOCAB, LENGTH, SAMPLES = 200, 20, 256


def synthetic_reviews(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Token sequences whose label is whether 'positive' tokens (ids < VOCAB/2) outnumber the others."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, size=(SAMPLES, LENGTH))
    y = ((x < VOCAB // 2).sum(axis=1) > LENGTH // 2).astype("float32").reshape(-1, 1)
    return x, y


def build(learning_rate: float) -> keras.Model:
    model = keras.Sequential(
        [
            keras.layers.Input((LENGTH,), dtype="int32"),
            keras.layers.Embedding(VOCAB, 16),
            keras.layers.LSTM(16),
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
        model.fit(x, y, epochs=3, batch_size=32, validation_split=0.25, callbacks=[callback], verbose=0)
        assert callback.version is not None
        print(f"lr={learning_rate}: training {callback.training_id} -> version {callback.version.number}")

    tracker = modeltrail.Tracker()
    latest = tracker.versions(MODEL)[-1]
    print(f"version {latest.number} changed: {latest.param_diff['changed']}")
    for point in tracker.metric_history(MODEL, "val_accuracy"):
        print(f"  epoch {point.step}: val_accuracy={point.value:.3f}")


if __name__ == "__main__":
    main()
