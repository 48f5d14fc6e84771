"""Issue 14, the values half: whatever the database would refuse is refused at the call, by name.

Items 2 and 4 (the at-the-call halves) and the smaller value cases. Each test proves two things on
every backend: the bad call raises a :class:`ValidationError` naming the value, and everything
valid that the training logged around it is recorded (read back through the Tracker API).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.test_outage import proxied  # noqa: F401  (the fixture: MySQL behind a TCP proxy that can be cut)

import modeltrail
from modeltrail import Dataset, ValidationError
from modeltrail import _spool as spool_mod
from modeltrail._values import MAX_JSON_BYTES, MAX_PARAMS_BYTES, TEXT_MAX_BYTES, flatten

BAD = "loss\udc80"  # what os.fsdecode makes of the file name b"loss\xff"
POINTS = 200


def refused(call: Callable[[], Any], *named: str) -> ValidationError:
    """``call`` raises a ValidationError whose message names each of ``named`` (as repr shows it)."""
    with pytest.raises(ValidationError) as caught:
        call()
    message = str(caught.value)
    for name in named:
        assert name in message, (name, message)
    return caught.value


def log_points(run: modeltrail.Training, start: int) -> None:
    for step in range(start, start + POINTS):
        run.log_metric("loss", 1.0 / (step + 1), step=step)


def assert_valid_work_kept(tracker: modeltrail.Tracker, run: modeltrail.Training, **params: Any) -> None:
    """The training ended as a version with every valid point and param, nothing of the refused calls."""
    assert run.status == "finished" and run.version is not None and run.version.number == 1
    record = tracker.get_training(run.id)
    assert record.status == "finished" and record.version == 1
    assert [p.step for p in tracker.metric_history(run, "loss")] == list(range(2 * POINTS))
    assert record.metrics["loss"].count == 2 * POINTS
    assert {k for k in record.metrics if not k.endswith(".duration_s")} == {"loss"}  # stages time themselves
    assert record.params == {"lr": 0.1, **params}
    assert [v.number for v in tracker.versions(run.version.model)] == [1]


# ------------------------------------------------------------------ item 2
def test_item2_unencodable_text_is_refused_at_the_call(tracker: modeltrail.Tracker, tmp_path: Path) -> None:
    named = repr(BAD)[1:-1]  # 'loss\\udc80' as the message spells it
    # Before a training exists: its model, tags, params, description, seeds, dataset.
    refused(lambda: tracker.training(BAD), named)
    refused(lambda: tracker.training("m", tags={"team": BAD}), named)
    refused(lambda: tracker.training("m", tags={BAD: "x"}), named)
    refused(lambda: tracker.training("m", params={BAD: 1}), named)
    refused(lambda: tracker.training("m", params={"p": BAD}), "'p'", named)
    refused(lambda: tracker.training("m", framework=BAD), named)
    refused(lambda: tracker.training("m", description=BAD), named)
    refused(lambda: tracker.training("m", seeds={"numpy": BAD}), named)
    refused(lambda: Dataset(name=BAD, digest="0" * 64), named)
    refused(lambda: Dataset(name="d", digest="0" * 64, source=f"/data/{BAD}"), named)
    refused(lambda: Dataset(name="d", digest="0" * 64, features=("age", BAD)), named)
    odd = tmp_path / os.fsdecode(b"train\xff.csv")
    odd.write_bytes(b"a,b\n1,2\n")
    refused(lambda: Dataset.from_file(odd), repr(odd.name)[1:-1])
    refused(lambda: Dataset.from_file(odd, name="train"), "source")
    assert tracker.models() == []  # none of them made a model

    artifact = tmp_path / os.fsdecode(b"model\xff.bin")
    artifact.write_bytes(b"weights")
    with tracker.training("m", params={"lr": 0.1}) as run:
        log_points(run, 0)
        refused(lambda: run.log_metric(BAD, 1.0), named)
        refused(lambda: run.log_metrics({"acc": 0.5, BAD: 1.0}), named)  # all or nothing: acc is not logged
        refused(lambda: run.log_param(BAD, 1), named)
        refused(lambda: run.log_param("path", f"/ckpt/{BAD}"), "'path'", named)
        refused(lambda: run.log_params({"cfg": {BAD: 1}}), "'cfg'", named)
        refused(lambda: run.add_context({"checkpoint": f"/ckpt/{BAD}"}), "'checkpoint'", named)
        refused(lambda: run.add_context({BAD: 1}), named)
        refused(lambda: run.log_artifact(artifact), "artifact path", "model\\udcff.bin")
        refused(lambda: run.stage(BAD), named)
        with run.stage("prep") as stage:
            refused(lambda: stage.log_metric(BAD, 1.0), named)
            refused(lambda: stage.log_param("k", BAD), named)
        log_points(run, POINTS)
    assert_valid_work_kept(tracker, run)
    record = tracker.get_training(run.id)
    assert "checkpoint" not in record.context and record.artifact_path is None
    assert record.dataset is None
    # The registry's text inputs: environment, reason, evaluation dataset and description.
    refused(lambda: tracker.deploy("m", 1, BAD), named)
    refused(lambda: tracker.deploy("m", 1, "prod", reason=BAD), named)
    refused(lambda: tracker.evaluate("m", dataset=BAD, metrics={"auc": 0.9}), named)
    refused(lambda: tracker.evaluate("m", dataset="test", metrics={BAD: 0.9}), named)
    assert tracker.deployments("m") == [] and tracker.evaluations("m") == []


def test_item2_a_command_line_that_is_not_utf8_is_stored_escaped_not_refused(tracker: modeltrail.Tracker) -> None:
    """The captured environment is not the caller's input: text that cannot be stored is escaped instead."""
    import sys

    argv = sys.argv
    sys.argv = [*argv, os.fsdecode(b"--data=/x/\xff.csv")]
    try:
        with tracker.training("m", params={"lr": 0.1}) as run:
            log_points(run, 0)
            log_points(run, POINTS)
    finally:
        sys.argv = argv
    assert_valid_work_kept(tracker, run)
    assert tracker.get_training(run.id).context["command"][-1] == "--data=/x/\\udcff.csv"


def test_item2_a_directory_holding_a_name_that_is_not_utf8_is_hashed_not_refused(
    tracker: modeltrail.Tracker, tmp_path: Path
) -> None:
    """Only what is stored must be UTF-8: a checkpoint folder's inner file names are hashed as bytes."""
    import hashlib

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / os.fsdecode(b"w\xff.bin")).write_bytes(b"weights")
    (folder / "config.json").write_bytes(b"{}")
    with tracker.training("m") as run:
        run.log_artifact(folder)
        run.set_dataset(Dataset.from_file(folder, name="shards"))
    record = tracker.get_training(run.id)
    expected = hashlib.sha256()
    for name, data in sorted([(b"config.json", b"{}"), (b"w\xff.bin", b"weights")]):
        expected.update(name + b"\0" + hashlib.sha256(data).hexdigest().encode() + b"\n")
    assert record.artifact_path == str(folder) and record.artifact_sha256 == expected.hexdigest()
    assert record.artifact_size == 9 and record.dataset is not None
    assert record.dataset.digest == expected.hexdigest()


def test_item4_a_command_line_too_long_for_its_column_is_cut_not_refused(tracker: modeltrail.Tracker) -> None:
    import sys

    argv = sys.argv
    sys.argv = ["train.py", *(f"--arg{i}={'v' * 50}" for i in range(100_000))]  # 6 MB of arguments
    try:
        with tracker.training("m") as run:
            pass
    finally:
        sys.argv = argv
    command = tracker.get_training(run.id).context["command"]
    assert command[1] == "train.py" and command[-1].endswith("more arguments cut)")
    assert len(json.dumps(command)) <= TEXT_MAX_BYTES


# ------------------------------------------------------------------ item 4
def test_item4_every_column_length_and_nul_is_refused_at_the_call(tracker: modeltrail.Tracker) -> None:
    long_text = "é" * (TEXT_MAX_BYTES // 2 + 1)  # fewer characters than TEXT's bytes, more bytes
    refused(lambda: tracker.training("m" * 201), "201 characters", "200")
    refused(lambda: tracker.training("m\x00"), "NUL")
    refused(lambda: tracker.training("m", tags={"team": "t" * 300}), "300 characters", "255")  # the tag
    refused(lambda: tracker.training("m", tags={"k" * 129: "v"}), "129 characters", "128")
    refused(lambda: tracker.training("m", tags={"team": "a\x00b"}), "NUL")
    refused(lambda: tracker.training("m", tags={"team ": "a"}), "'team '")
    refused(lambda: tracker.training("m", framework="f" * 65), "64")
    refused(lambda: tracker.training("m", model_type="a\x00"), "NUL")
    refused(lambda: tracker.training("m", description=long_text), "65,536 bytes", "65,535")
    refused(lambda: tracker.training("m", description="a\x00b"), "NUL")
    refused(lambda: tracker.training("m", params={"p" * 256: 1}), "255")
    refused(lambda: tracker.training("m", params={"cfg": {"a\x00": 1}}), "'cfg'", "NUL")
    refused(lambda: tracker.training("m", seeds={"numpy": "4\x002"}), "NUL")
    refused(lambda: Dataset(name="d" * 201, digest="0" * 64), "200")
    refused(lambda: Dataset(name="d", digest="0" * 65), "65 characters", "64")
    refused(lambda: Dataset(name="d", digest="0" * 64, source="/data/\x00"), "NUL")
    refused(lambda: Dataset(name="d", digest="0" * 64, source=long_text), "source", "65,535")
    refused(lambda: Dataset(name="d", digest="0" * 64, n_rows=2**63), "n_rows", "2**63")
    refused(lambda: Dataset(name="d", digest="0" * 64, features=("a\x00",)), "feature name", "NUL")
    assert tracker.models() == []

    with tracker.training("m", params={"lr": 0.1}, tags={"team": "t" * 255}) as run:
        log_points(run, 0)
        refused(lambda: run.log_metric("k" * 256, 1.0), "255")
        refused(lambda: run.log_metric("a\x00", 1.0), "NUL")
        refused(lambda: run.log_param("p", "a\x00b"), "'p'", "NUL")
        refused(lambda: run.add_context({"c" * 256: 1}), "255")
        refused(lambda: run.add_context({"device": "cuda\x00"}), "'device'", "NUL")
        refused(lambda: run.stage("s" * 65), "64")
        refused(lambda: run.stage("a\x00"), "NUL")
        refused(lambda: run.log_artifact("/tmp/a\x00b"), "NUL")
        refused(lambda: run.set_dataset(Dataset(name="d", digest="0" * 65)), "64")
        log_points(run, POINTS)
    assert_valid_work_kept(tracker, run)
    assert tracker.model("m").tags == {"team": "t" * 255}
    refused(lambda: tracker.deploy("m", 1, "e" * 65), "64")
    refused(lambda: tracker.deploy("m", 1, "prod\x00"), "NUL")
    refused(lambda: tracker.deploy("m", 1, "prod", reason=long_text), "reason", "65,535")
    refused(lambda: tracker.deploy("m", 1, "prod", endpoint="http://x/\x00"), "endpoint", "NUL")
    refused(lambda: tracker.evaluate("m", dataset="t\x00", metrics={"auc": 0.9}), "NUL")
    assert tracker.deployments("m") == [] and tracker.evaluations("m") == []


def test_item4_oversized_params_and_context_are_refused_by_key_and_size(tracker: modeltrail.Tracker) -> None:
    huge = "x" * 22_000_000  # the issue's ~22 MB param: past MariaDB's 16 MiB max_allowed_packet
    refused(lambda: tracker.training("m", params={"vocab": huge}), "'vocab'", "22,000,002 bytes", f"{MAX_JSON_BYTES:,}")
    refused(lambda: tracker.training("m", seeds={"state": huge}), "context", f"{MAX_JSON_BYTES:,}")
    # At the limit it is stored, even in the escaping-heavy worst case: backslashes double twice
    # (JSON, then the driver's string literal) and the display column holds the text again.
    at_limit = "\\" * ((MAX_JSON_BYTES - 2) // 2)
    fill = "\\" * ((MAX_PARAMS_BYTES // 3 - 100) // 2)  # three such params fill the training's share
    with tracker.training("m", params={"lr": 0.1, "big": at_limit}) as run:
        log_points(run, 0)
        refused(lambda: run.log_param("vocab", huge), "'vocab'", "22,000,002 bytes")
        refused(lambda: run.log_params({"a": at_limit, "b": at_limit}), "'a, b'", f"{MAX_PARAMS_BYTES:,}")
        run.log_params({"a": fill, "b": fill})
        refused(lambda: run.log_param("c", "z" * 200), "'c'", f"{MAX_PARAMS_BYTES:,}")  # 178 bytes are left
        refused(lambda: run.add_context({"blob": huge}), "'blob'", f"{MAX_JSON_BYTES:,}")
        run.add_context({"blob": "y" * (MAX_JSON_BYTES // 2)})
        refused(lambda: run.add_context({"blob2": "y" * (MAX_JSON_BYTES // 2)}), "'blob2'", f"{MAX_JSON_BYTES:,}")
        run.add_context({"blob": "small"})  # replacing a value frees its room
        run.add_context({"blob2": "y" * (MAX_JSON_BYTES // 2)})
        log_points(run, POINTS)
    assert_valid_work_kept(tracker, run, big=at_limit, a=fill, b=fill)
    assert tracker.get_training(run.id).context["blob2"] == "y" * (MAX_JSON_BYTES // 2)
    # A retrain that changes all three: the version's param diff (and its audit event) holds old and new.
    changed = {"big": at_limit[:-1], "a": fill[:-1], "b": fill[:-1]}
    with tracker.training("m", params={"lr": 0.1, **changed}) as second:
        pass
    assert second.version is not None and second.version.number == 2
    diff = tracker.versions("m")[1].param_diff
    assert diff["changed"] == {k: {"old": run.params[k], "new": v} for k, v in changed.items()}


def test_item4_refused_values_never_reach_the_spool(mysql_url: str, request: pytest.FixtureRequest) -> None:
    """Offline, the issue's 22 MB param and 300-character tag are refused too: the spool replays whole."""
    url, proxy = request.getfixturevalue("proxied")
    modeltrail.Tracker(mysql_url).close()
    proxy.cut()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the database is unreachable ... spool"
        tracker = modeltrail.Tracker(url)
        refused(lambda: tracker.training("m", tags={"team": "t" * 300}), "300 characters")
        with tracker.training("m", params={"lr": 0.1}) as run:
            log_points(run, 0)
            refused(lambda: run.log_param("vocab", "x" * 22_000_000), "'vocab'", "22,000,002 bytes")
            refused(lambda: run.log_metric(BAD, 1.0), repr(BAD)[1:-1])
            refused(lambda: run.log_param("p", "a\x00"), "NUL")
            log_points(run, POINTS)
        assert run.id is None and spool_mod.pending(url) > 0
    proxy.restore()
    assert tracker.sync(timeout=60) == 0
    reader = modeltrail.Tracker(mysql_url)
    (record,) = reader.trainings("m")
    assert record.status == "finished" and record.version == 1 and record.params == {"lr": 0.1}
    assert [p.step for p in reader.metric_history(record, "loss")] == list(range(2 * POINTS))


# ------------------------------------------------------------------ smaller
def test_negative_zero_round_trips(tracker: modeltrail.Tracker) -> None:
    def negative_zero(x: Any) -> bool:
        return x == 0.0 and math.copysign(1.0, x) < 0

    with tracker.training("m", params={"shift": -0.0, "grid": [-0.0, 0.0], "cfg": {"b": -0.0}}) as run:
        run.add_context({"offset": -0.0})
        run.log_metric("bias", 1.0, step=0)
        run.log_metric("bias", -0.0, step=1)
    record = tracker.get_training(run.id)
    assert negative_zero(record.params["shift"]) and negative_zero(record.params["cfg"]["b"])
    assert negative_zero(record.params["grid"][0]) and not negative_zero(record.params["grid"][1])
    assert negative_zero(record.context["offset"])
    assert negative_zero(record.metrics["bias"].last) and negative_zero(record.metrics["bias"].min)
    evaluation = tracker.evaluate("m", dataset="test", metrics={"bias": -0.0, "zero": 0.0})
    assert negative_zero(evaluation.metrics["bias"]) and not negative_zero(evaluation.metrics["zero"])
    tracker.deploy("m", 1, "prod")
    tracker.log_production_metrics("m", "prod", {"bias": -0.0})
    (measured,) = tracker.production_metrics("m", environment="prod")
    assert negative_zero(measured.value)


def test_negative_zero_round_trips_in_metric_history(tracker: modeltrail.Tracker) -> None:
    with tracker.training("m") as run:
        run.log_metric("bias", -0.0, step=0)
    (point,) = tracker.metric_history(run, "bias")
    assert math.copysign(1.0, point.value) < 0


def test_bool_metric_values_are_refused(tracker: modeltrail.Tracker) -> None:
    with tracker.training("m", params={"lr": 0.1}) as run:
        log_points(run, 0)
        refused(lambda: run.log_metric("converged", True), "'converged'", "True", "boolean")
        refused(lambda: run.log_metric("converged", np.bool_(False)), "'converged'", "boolean")
        refused(lambda: run.log_metrics({"acc": 0.5, "converged": False}), "'converged'", "boolean")
        run.log_metric("converged", float(True))  # said explicitly, it is a number
        run.log_metric("epochs", np.int64(3))  # integers are numbers
        log_points(run, POINTS)
    record = tracker.get_training(run.id)
    assert record.metrics["converged"].last == 1.0 and record.metrics["converged"].count == 1
    assert record.metrics["epochs"].last == 3.0 and "acc" not in record.metrics
    refused(lambda: tracker.evaluate("m", dataset="test", metrics={"passed": True}), "'passed'", "boolean")
    assert tracker.evaluations("m") == []


def test_colliding_param_keys_are_refused(tracker: modeltrail.Tracker) -> None:
    collide = {1: "a", "1": "b"}
    refused(lambda: tracker.training("m", params=collide), "must be a string")  # as before: keys are strings
    refused(lambda: tracker.training("m", params={"cfg": collide}), "'cfg'", "1", "'1'", "both stored as '1'")
    refused(lambda: tracker.training("m", tags=collide), "both stored as '1'")
    refused(lambda: flatten({"opt": collide}), "'opt.1'")
    refused(lambda: flatten({"opt": {"lr": 1}, "opt.lr": 2}), "'opt.lr'")
    with tracker.training("m", params={"lr": 0.1}) as run:
        log_points(run, 0)
        refused(lambda: run.log_params({"cfg": collide}), "'cfg'", "both stored as '1'")
        refused(lambda: run.add_context(collide), "both stored as '1'")
        with run.stage("prep") as stage:
            refused(lambda: stage.log_params(collide), "must be a string")  # not prep.1 twice
        log_points(run, POINTS)
    assert_valid_work_kept(tracker, run)
    assert tracker.get_training(run.id).context.get("1") is None


@pytest.mark.parametrize(
    ("X", "y", "named"),
    [([[1, 2], [3]], None, "X"), ([[1.0, 2.0], [3.0, 4.0]], [[1], [2, 3]], "y"), ([[[1], [2, 3]]], None, "X")],
)
def test_ragged_dataset_is_a_validation_error(X: Any, y: Any, named: str) -> None:
    error = refused(lambda: Dataset.from_arrays(X, y, name="ragged"), "'ragged'", named, "rectangular")
    assert not isinstance(error.__cause__, ValueError) or error.__suppress_context__


def test_exception_text_the_database_would_refuse_is_stored_escaped(tracker: modeltrail.Tracker) -> None:
    """An exception's text is not the caller's input: NUL, lone surrogates and length are made storable.

    The user's exception propagates and the training is recorded failed (with PostgreSQL, NUL in the
    text used to turn into a StorageError and leave the training running).
    """
    message = "bad byte \x00 in " + os.fsdecode(b"row\xff") + " " + "x" * 70_000
    with pytest.raises(KeyError), tracker.training("m", params={"lr": 0.1}) as run:
        log_points(run, 0)
        with run.stage("load"):
            raise KeyError(message)
    record = tracker.get_training(run.id)
    assert record.status == "failed" and record.version is None and run.status == "failed"
    assert record.error is not None and record.error.startswith("stage 'load' failed: KeyError: 'bad byte \\x00 in row")
    assert "row\\udcff" in record.error and record.error.endswith(" ... (cut)")
    assert len(record.error.encode()) <= TEXT_MAX_BYTES
    assert [p.step for p in tracker.metric_history(run, "loss")] == list(range(POINTS))
