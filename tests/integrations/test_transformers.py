"""The Hugging Face Trainer callback: what ``train()``, ``evaluate()`` and ``predict()`` leave in the ledger.

Tiny models are built from configs and trained on generated token ids: nothing is downloaded
(``HF_HUB_OFFLINE=1``). Every recorded metric is compared with ``trainer.state.log_history``, point by point.
"""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: nothing may reach the network
os.environ["TRANSFORMERS_OFFLINE"] = "1"
pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # the Trainer's own requirement (in the ``transformers`` extra)

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainingArguments,
)

import modeltrail
from modeltrail import _adapter
from modeltrail._dataset import path_digest
from modeltrail._errors import ModeltrailWarning
from modeltrail.integrations import transformers as adapter
from modeltrail.integrations.transformers import INTERRUPTED, ModeltrailCallback

ROOT = Path(__file__).resolve().parents[2]
VOCAB, LENGTH = 32, 8


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """modeltrail warns once per hook and process; each test sees its own first warning."""
    monkeypatch.setattr(_adapter, "_warned", set())


def examples(n: int = 64, seed: int = 0, *, lm: bool = False) -> list[dict[str, torch.Tensor]]:
    """Token ids whose label is whether the first token is in the upper half of the vocabulary."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, LENGTH), generator=g)
    if lm:
        return [{"input_ids": ids[i], "labels": ids[i]} for i in range(n)]
    labels = (ids[:, 0] > VOCAB // 2).long()
    return [{"input_ids": ids[i], "labels": labels[i]} for i in range(n)]


def tiny_bert(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=LENGTH * 2, num_labels=2,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def tiny_gpt2(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=LENGTH * 2, n_embd=16, n_layer=1, n_head=2))


def arguments(out: Path, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "output_dir": str(out), "max_steps": 12, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 8,
        "learning_rate": 5e-3, "logging_steps": 2, "eval_strategy": "steps", "eval_steps": 4, "save_steps": 6,
        "report_to": "none", "use_cpu": True, "disable_tqdm": True, "seed": 0,
    }  # fmt: skip
    settings.update(overrides)
    return TrainingArguments(**settings)


def history(tracker: modeltrail.Tracker, training_id: int, key: str) -> list[tuple[int, float]]:
    return [(p.step, p.value) for p in tracker.metric_history(training_id, key)]


def numeric_keys(entry: dict[str, Any]) -> set[str]:
    return {k for k, v in entry.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


# ------------------------------------------------------------------ happy path
def test_train_records_log_history_params_checkpoints_model_and_evaluations(
    db_url_sqlite_mysql: str, tmp_path: Path
) -> None:
    data = examples()
    args = arguments(tmp_path / "out", hub_token="hf_do_not_store_me")
    cb = ModeltrailCallback("tiny-bert", uri=db_url_sqlite_mysql, artifact_dir=tmp_path / "models")
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=data, eval_dataset=data[:16], callbacks=[cb])
    trainer.train()
    logged_in_train = [dict(e) for e in trainer.state.log_history]
    evaluated = trainer.evaluate()
    predicted = trainer.predict(data[16:32]).metrics

    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    (run,) = tracker.trainings("tiny-bert")
    assert (run.status, run.version, run.id) == ("finished", 1, cb.training_id)
    assert cb.version is not None and cb.version.number == 1
    model = tracker.model("tiny-bert")
    assert (model.framework, model.model_type) == ("transformers", "classifier")
    assert run.context["model_class"] == "transformers.models.bert.modeling_bert.BertForSequenceClassification"
    assert run.context["num_parameters"]["total"] == sum(p.numel() for p in trainer.model.parameters())

    # Every number the Trainer logged during train(), at its global step, key by key, in order.
    keys = set().union(*(numeric_keys(e) for e in logged_in_train))
    assert {"loss", "learning_rate", "grad_norm", "epoch", "eval_loss", "train_loss", "train_runtime"} <= keys
    assert set(run.metrics) - {"train.duration_s"} == keys  # nothing more, nothing less (the stage's own aside)
    for key in sorted(keys):
        expected = [(e["step"], float(e[key])) for e in logged_in_train if key in e]
        assert history(tracker, run.id, key) == expected, key
    assert [v for _, v in history(tracker, run.id, "learning_rate")] == pytest.approx(
        [5e-3 * (1 - (s - 1) / 12) for s in range(2, 13, 2)]
    )  # the linear schedule: at a logged step, the rate its last update used

    # TrainingArguments by their names, the model config under config., folders in the context, no credentials.
    p = run.params
    assert (p["learning_rate"], p["max_steps"], p["per_device_train_batch_size"], p["seed"]) == (5e-3, 12, 8, 0)
    assert (p["eval_strategy"], p["lr_scheduler_type"], p["optim"]) == ("steps", "linear", "adamw_torch_fused")
    assert (p["config.hidden_size"], p["config.num_hidden_layers"], p["config.num_labels"]) == (16, 1, 2)
    assert p["config.model_type"] == "bert" and "config.id2label.0" not in p
    assert not {"output_dir", "hub_token", "report_to"} & set(p)
    assert run.context["training_arguments"]["output_dir"] == str(tmp_path / "out")
    assert run.context["model_config"]["labels"] == ["LABEL_0", "LABEL_1"]
    exported = str(tracker.export("tiny-bert"))
    assert "hf_do_not_store_me" not in exported and "hub_token" not in exported

    # Checkpoints as the Trainer wrote them; the final model as the version's artifact.
    checkpoints = run.context["checkpoints"]
    assert checkpoints == [
        {"step": 6, "path": str(tmp_path / "out" / "checkpoint-6")},
        {"step": 12, "path": str(tmp_path / "out" / "checkpoint-12")},
    ]
    assert all(Path(c["path"], "model.safetensors").is_file() for c in checkpoints)
    assert run.context["trainer_state"]["global_step"] == 12
    folder = Path(run.artifact_path or "")
    assert folder == tmp_path / "models" / f"tiny-bert-{run.id}"
    assert {"config.json", "model.safetensors", "training_args.bin"} <= {f.name for f in folder.iterdir()}
    assert (run.artifact_sha256, run.artifact_size) == path_digest(folder)
    (artifact,) = tracker.artifacts("tiny-bert", version=1)
    assert (artifact.name, artifact.kind, artifact.role, artifact.sha256) == (
        "model", "directory", "model", run.artifact_sha256,
    )  # fmt: skip
    fetched = tracker.download_model("tiny-bert", version=1)  # verified against the ledger, file by file
    reloaded = BertForSequenceClassification.from_pretrained(fetched.path)
    assert torch.equal(reloaded.classifier.weight, trainer.model.classifier.weight)

    # The train data's identity: the same examples, the same digest.
    assert run.dataset is not None and (run.dataset.name, run.dataset.n_rows) == ("tiny-bert-train", 64)
    assert run.dataset.features == ["input_ids", "labels"]

    # evaluate() and predict() after train(): evaluations of version 1, exactly the returned metrics.
    ev, pr = tracker.evaluations("tiny-bert")
    assert (ev.version, ev.dataset, ev.metrics) == (1, "tiny-bert-eval", pytest.approx(evaluated))
    assert (pr.version, pr.dataset, pr.metrics) == (1, "tiny-bert-test", pytest.approx(predicted))
    assert ev.dataset_digest is not None and ev.dataset_digest != pr.dataset_digest  # different examples
    assert [e.id for e in cb.evaluations_made] == [ev.id, pr.id]
    assert set(run.metrics) - {"train.duration_s"} == keys  # evaluations made no metric points
    assert [s.name for s in run.stages] == ["train"] and run.stages[0].status == "finished"


def test_retraining_makes_version_two_with_the_changes_and_the_same_data(sqlite_url: str, tmp_path: Path) -> None:
    for lr in (5e-3, 1e-2):
        cb = ModeltrailCallback("tiny-bert", uri=sqlite_url, artifact_dir=tmp_path / "models")
        args = arguments(tmp_path / "out", learning_rate=lr, eval_strategy="no", save_strategy="no")
        Trainer(model=tiny_bert(), args=args, train_dataset=examples(), callbacks=[cb]).train()
    tracker = modeltrail.Tracker(sqlite_url)
    first, second = tracker.trainings("tiny-bert")
    assert second.version == 2 and tracker.versions("tiny-bert")[1].param_diff["changed"] == {
        "learning_rate": {"old": 5e-3, "new": 1e-2}
    }
    assert first.dataset is not None and second.dataset is not None
    assert first.dataset.digest == second.dataset.digest
    assert "checkpoints" not in first.context  # save_strategy="no": nothing was saved


# ------------------------------------------------------------- report_to
def test_report_to_modeltrail_makes_the_callback(
    db_url_sqlite_mysql: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELTRAIL_URI", db_url_sqlite_mysql)
    args = arguments(tmp_path / "out", report_to=["modeltrail"], eval_strategy="no", save_strategy="no")
    trainer = Trainer(model=tiny_gpt2(), args=args, train_dataset=examples(lm=True))
    (cb,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, ModeltrailCallback)]
    trainer.train()

    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    model = tracker.model("GPT2LMHeadModel")  # no hub_model_id: the class names the model
    assert (model.framework, model.model_type, model.latest_version) == ("transformers", "language-model", 1)
    (run,) = tracker.trainings("GPT2LMHeadModel")
    assert run.id == cb.training_id and run.params["config.n_embd"] == 16
    for key in ("loss", "learning_rate", "train_loss"):
        expected = [(e["step"], float(e[key])) for e in trainer.state.log_history if key in e]
        assert expected and history(tracker, run.id, key) == expected, key
    assert run.context["training_arguments"]["report_to"] == ["modeltrail"]


def test_hub_model_id_names_the_model(sqlite_url: str, tmp_path: Path) -> None:
    args = arguments(tmp_path / "out", hub_model_id="me/tiny", eval_strategy="no", save_strategy="no", max_steps=2)
    cb = ModeltrailCallback(uri=sqlite_url, save_model=False)
    Trainer(model=tiny_bert(), args=args, train_dataset=examples(), callbacks=[cb]).train()
    (run,) = modeltrail.Tracker(sqlite_url).trainings("me/tiny")
    assert run.version == 1 and run.artifact_path is None


# ---------------------------------------------------------- joined training
def test_inside_an_open_training_everything_lands_in_it(sqlite_url: str, tmp_path: Path) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    data = examples()
    with tracker.training("wrapped", params={"learning_rate": 0.5}) as run:
        cb = ModeltrailCallback("ignored", tracker=tracker, save_model=False)
        args = arguments(tmp_path / "out", eval_strategy="no", save_strategy="no")
        trainer = Trainer(model=tiny_bert(), args=args, train_dataset=data, eval_dataset=data[:16], callbacks=[cb])
        trainer.train()
        assert run.status == "running"  # the block owns it
        evaluated = trainer.evaluate()
        predicted = trainer.predict(data[16:32]).metrics
    record = tracker.trainings("wrapped")[0]
    assert record.version == 1 and [m.name for m in tracker.models()] == ["wrapped"]
    assert record.params["learning_rate"] == 0.5 and record.params["max_steps"] == 12  # the block's value wins
    assert history(tracker, record.id, "eval_loss") == [(12, pytest.approx(evaluated["eval_loss"]))]
    assert history(tracker, record.id, "test_loss") == [(12, pytest.approx(predicted["test_loss"]))]
    assert list(tracker.evaluations("wrapped")) == []


# ---------------------------------------------------------------- failures
class Exploding(torch.nn.Module):
    """Wraps a model; its forward raises from the ``fail_at``-th training call on."""

    def __init__(self, inner: Any, fail_at: int) -> None:
        super().__init__()
        self.inner, self.fail_at, self.calls = inner, fail_at, 0
        self.config = inner.config

    def forward(self, **batch: Any) -> Any:
        self.calls += 1
        if self.training and self.calls >= self.fail_at:
            raise RuntimeError("boom in the model")
        return self.inner(**batch)


def test_train_that_raises_is_failed_at_the_next_train(sqlite_url: str, tmp_path: Path) -> None:
    cb = ModeltrailCallback("tiny-bert", uri=sqlite_url, save_model=False)
    args = arguments(tmp_path / "out", eval_strategy="no", save_strategy="no", remove_unused_columns=False)
    model = Exploding(tiny_bert(), fail_at=5)
    trainer = Trainer(model=model, args=args, train_dataset=examples(), callbacks=[cb])
    with pytest.raises(RuntimeError, match="boom in the model"):
        trainer.train()
    failed_id = cb.training_id
    model.fail_at = 10**6
    trainer.train()
    tracker = modeltrail.Tracker(sqlite_url)
    failed, done = tracker.trainings("tiny-bert")
    assert (failed.id, failed.status, failed.version) == (failed_id, "failed", None)
    assert failed.error is not None and INTERRUPTED in failed.error
    assert [s for s, _ in history(tracker, failed.id, "loss")] == [2, 4]  # what it logged before it raised
    assert (done.status, done.version) == ("finished", 1)


def _train_that_raises(url: str, out: Path) -> str:
    cb = ModeltrailCallback("tiny-bert", uri=url, save_model=False)
    args = arguments(out, eval_strategy="no", save_strategy="no", remove_unused_columns=False)
    trainer = Trainer(model=Exploding(tiny_bert(), fail_at=3), args=args, train_dataset=examples(), callbacks=[cb])
    try:
        trainer.train()
    except RuntimeError as e:
        return str(e)  # the traceback (and with it the Trainer and the callback) goes with this frame
    raise AssertionError("train() did not raise")


def test_train_that_raises_is_failed_when_the_callback_goes(sqlite_url: str, tmp_path: Path) -> None:
    assert _train_that_raises(sqlite_url, tmp_path / "out") == "boom in the model"
    gc.collect()
    tracker = modeltrail.Tracker(sqlite_url)
    for _ in range(100):  # the watchdog ends it on a thread of its own
        (run,) = tracker.trainings("tiny-bert")
        if run.status != "running":
            break
        time.sleep(0.1)
    assert run.status == "failed" and run.error is not None and "discarded" in run.error


def test_a_failure_in_the_callback_warns_once_and_training_finishes(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(logs: Any) -> Any:
        raise RuntimeError("modeltrail bug")

    monkeypatch.setattr(adapter, "numbers", broken)
    cb = ModeltrailCallback("tiny-bert", uri=sqlite_url, save_model=False)
    args = arguments(tmp_path / "out", eval_strategy="no", save_strategy="no")
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=examples(), callbacks=[cb])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = trainer.train()
    ours = [w for w in caught if issubclass(w.category, ModeltrailWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert "on_log failed (RuntimeError: modeltrail bug)" in str(ours[0].message)
    assert result.global_step == 12  # the training ran to its end
    (run,) = modeltrail.Tracker(sqlite_url).trainings("tiny-bert")
    assert (run.status, run.version) == ("finished", 1)  # the rest was recorded


def test_evaluate_before_train_is_not_recorded_and_says_so(sqlite_url: str, tmp_path: Path) -> None:
    data = examples()
    cb = ModeltrailCallback("tiny-bert", uri=sqlite_url)
    args = arguments(tmp_path / "out", eval_strategy="no", save_strategy="no")
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=data, eval_dataset=data[:16], callbacks=[cb])
    with pytest.warns(ModeltrailWarning, match=r"trainer.evaluate\(\) is not recorded as an evaluation: there is no"):
        trainer.evaluate()
    assert list(modeltrail.Tracker(sqlite_url).models()) == []


# ------------------------------------------------------------------- resume
def test_resuming_from_a_checkpoint_is_in_the_context(sqlite_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = arguments(out, eval_strategy="no", save_steps=6, max_steps=6)
    Trainer(model=tiny_bert(), args=args, train_dataset=examples(), callbacks=[ModeltrailCallback(
        "tiny-bert", uri=sqlite_url, save_model=False)]).train()  # fmt: skip
    longer = arguments(out, eval_strategy="no", save_strategy="no", max_steps=12)
    cb = ModeltrailCallback("tiny-bert", uri=sqlite_url, save_model=False)
    trainer = Trainer(model=tiny_bert(), args=longer, train_dataset=examples(), callbacks=[cb])
    trainer.train(resume_from_checkpoint=str(out / "checkpoint-6"))
    tracker = modeltrail.Tracker(sqlite_url)
    first, resumed = tracker.trainings("tiny-bert")
    assert resumed.context["resumed_from"] == {"checkpoint": str(out / "checkpoint-6"), "global_step": 6}
    assert [s for s, _ in history(tracker, resumed.id, "loss")] == [8, 10, 12]
    assert first.context["checkpoints"] == [{"step": 6, "path": str(out / "checkpoint-6")}]


# -------------------------------------------------------------------- misc
def test_the_callback_pickles_as_its_settings(sqlite_url: str, tmp_path: Path) -> None:
    cb = ModeltrailCallback("tiny-bert", uri=sqlite_url, artifact_dir=tmp_path, tags={"team": "nlp"})
    copy = pickle.loads(pickle.dumps(cb))
    assert (copy.model_name, copy.uri, copy.artifact_dir, copy.tags) == ("tiny-bert", sqlite_url, str(tmp_path), {
        "team": "nlp"})  # fmt: skip
    assert copy.training is None and copy.version is None


def test_missing_transformers_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "try:\n    import modeltrail.integrations.transformers\n"
        "except ModuleNotFoundError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert 'pip install "modeltrail[transformers]"' in done.stdout


def test_example_learns_and_leaves_two_versions(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    env = {**os.environ, "MODELTRAIL_URI": db_url_sqlite_mysql, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "transformers_tiny.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    versions = tracker.versions("tiny-sentiment")
    assert [v.number for v in versions] == [1, 2]
    first, second = tracker.trainings("tiny-sentiment")
    assert second.params["learning_rate"] == 3e-3 and versions[1].param_diff["changed"] == {
        "learning_rate": {"old": 1e-3, "new": 3e-3}
    }
    losses = [v for _, v in history(tracker, second.id, "loss")]
    assert losses[-1] < losses[0] * 0.5, losses  # version 2 learns
    for record in (first, second):
        assert Path(record.artifact_path or "", "model.safetensors").is_file()
        assert Path(record.artifact_path or "", "tokenizer_config.json").is_file()  # the tokenizer goes with it
    by_version = {e.version: e for e in tracker.evaluations("tiny-sentiment")}
    assert set(by_version) == {1, 2} and by_version[2].metrics["eval_accuracy"] > 0.9
    assert by_version[2].metrics["eval_loss"] < by_version[1].metrics["eval_loss"]
    assert "-> version 2" in done.stdout and "eval_accuracy=" in done.stdout
