"""The Hugging Face Trainer's cost of being recorded: one tiny BERT training, without and with each logger.

A plugged-in workload of ``bench_adapters.py`` (see ``_adapter_workloads.py``). Variants, each a fresh process:

* ``none``: the Trainer with ``report_to="none"``;
* ``modeltrail``: ``callbacks=[ModeltrailCallback(save_model=False)]``: TrainingArguments, model config, every log;
* ``mlflow``: ``mlflow.autolog()`` and ``report_to=["mlflow"]``, the way MLflow records a Trainer: its autolog alone
  patches nothing in the Trainer (``mlflow.transformers.autolog`` only silences sub-model logging), so Transformers'
  own ``MLflowCallback`` does the recording (arguments, model config, every log);
* ``modeltrail-model`` / ``mlflow-model``: the same, and the final model saved and recorded (modeltrail's default;
  ``HF_MLFLOW_LOG_ARTIFACTS=1`` for MLflow).

Every step is logged (``logging_steps=1``) so that the per-log cost shows. ``points_ok``: the store holds one
``loss`` point per ``loss`` entry of ``trainer.state.log_history``.
"""

from __future__ import annotations

import os
from typing import Any

from _adapter_workloads import HookTimer, modeltrail_points, timed_fit

FRAMEWORKS = ("transformers",)
EXPERIMENT = "bench-transformers"
VOCAB, LENGTH = 64, 16
HOOKS = ("on_train_begin", "on_log", "on_save", "on_train_end")


def variants(framework: str, backends: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": "none", "backend": "-", "logs": "Trainer, report_to='none'"}]
    for backend in backends:
        out += [
            {
                "name": "modeltrail",
                "backend": backend,
                "logs": "ModeltrailCallback(save_model=False): arguments, config, every log",
                "compare_to": "mlflow",
            },
            {
                "name": "mlflow",
                "backend": backend,
                "logs": "mlflow.autolog() + report_to=['mlflow'] (MLflowCallback): arguments, config, every log",
            },
            {
                "name": "modeltrail-model",
                "backend": backend,
                "logs": "ModeltrailCallback(): the same and the final model folder as artifact",
                "compare_to": "mlflow-model",
            },
            {
                "name": "mlflow-model",
                "backend": backend,
                "logs": "the same with HF_MLFLOW_LOG_ARTIFACTS=1: the final model logged",
            },
        ]
    return out


def child(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["DISABLE_MLFLOW_INTEGRATION"] = "FALSE"
    name, uri = spec["variant"], spec.get("uri")
    if name.startswith("mlflow"):
        os.environ["MLFLOW_TRACKING_URI"] = uri or ""
        os.environ["MLFLOW_EXPERIMENT_NAME"] = EXPERIMENT
        os.environ["HF_MLFLOW_LOG_ARTIFACTS"] = "1" if name == "mlflow-model" else "0"
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    g = torch.Generator().manual_seed(spec["seed"])
    n = max(256, spec["samples"] // 10)
    ids = torch.randint(1, VOCAB, (n, LENGTH), generator=g)
    labels = (ids[:, 0] > VOCAB // 2).long()
    data = [{"input_ids": ids[i], "labels": labels[i]} for i in range(n)]
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=LENGTH * 2, num_labels=2,
    )  # fmt: skip
    steps = 40 * max(1, spec["epochs"])
    args = TrainingArguments(
        output_dir=os.path.join(spec["workdir"], f"hf-{name}"), max_steps=steps, per_device_train_batch_size=16,
        logging_steps=1, save_strategy="no", eval_strategy="no", use_cpu=True, disable_tqdm=True, seed=spec["seed"],
        report_to=["mlflow"] if name.startswith("mlflow") else "none",
    )  # fmt: skip
    callbacks: list[Any] = []
    timer = HookTimer()
    if name.startswith("modeltrail"):
        from modeltrail.integrations.transformers import ModeltrailCallback

        callback = ModeltrailCallback(
            "bench-transformers", uri=uri, save_model=name == "modeltrail-model", log_dataset=True
        )
        timer.wrap(callback, HOOKS)
        callbacks.append(callback)
    if name.startswith("mlflow"):
        import mlflow

        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(EXPERIMENT)
        mlflow.autolog(silent=True)
    result: dict[str, Any] = {}
    model = BertForSequenceClassification(config)
    with timed_fit(spec, result, timer):
        trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
        trainer.train()
        if name.startswith("modeltrail"):
            callback.tracker.flush()
    want = sum(1 for entry in trainer.state.log_history if "loss" in entry)
    result["steps"] = steps
    if name.startswith("modeltrail"):
        result.update(modeltrail_points(uri, callback.version, "loss", want))
    elif name.startswith("mlflow"):
        from _adapter_workloads import mlflow_points

        run = mlflow.last_active_run()
        result.update(mlflow_points(uri, run.info.run_id if run else None, "loss", want))
    else:
        result.update(points_ok=True, points=0)
    return result
