"""System metrics: sampled by a background thread into ``system/...`` metrics of the training, opt in."""

from __future__ import annotations

import importlib
import threading
import time
import types
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import modeltrail
from modeltrail import _system
from modeltrail._errors import ConfigurationError, ModeltrailWarning, ValidationError

pytest.importorskip("psutil")

HOST_KEYS = {
    "system/cpu_percent", "system/process_cpu_percent", "system/process_rss_mb", "system/memory_percent",
    "system/memory_used_mb", "system/disk_read_mb", "system/disk_write_mb", "system/network_sent_mb",
    "system/network_recv_mb",
}  # fmt: skip


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "modeltrail-system-metrics"]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_opt_in_training_records_system_metrics_every_interval(db_url_sqlite_mysql: str) -> None:
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    with tracker.training("sys", system_metrics=0.05) as run:
        (thread,) = sampler_threads()
        assert thread.daemon
        blob = bytearray(30 * 1024 * 1024)  # the process grows while it trains
        wait_for(lambda: run._last_step.get("system/process_rss_mb", -1) >= 2)
        del blob
    assert not thread.is_alive() and not sampler_threads()  # stopped with the training
    record = tracker.get_training(run.id)
    assert set(record.metrics) >= HOST_KEYS
    rss = tracker.metric_history(run.id, "system/process_rss_mb")
    assert [p.step for p in rss] == list(range(len(rss))) and len(rss) >= 3  # the last sample at the end too
    assert max(p.value for p in rss) > 30
    cpu = tracker.metric_history(run.id, "system/cpu_percent")
    assert all(0.0 <= p.value <= 100.0 for p in cpu)
    memory = tracker.metric_history(run.id, "system/memory_percent")
    assert all(0.0 < p.value <= 100.0 for p in memory)
    assert all(p.value >= 0 for p in tracker.metric_history(run.id, "system/network_recv_mb"))


def test_off_by_default_and_a_long_interval_still_samples_once_at_the_end(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    with tracker.training("quiet") as run:
        assert not sampler_threads()
    assert not [k for k in tracker.get_training(run.id).metrics if k.startswith("system/")]
    with tracker.training("long", system_metrics=True) as run:  # default 10 s: the end wakes the sampler
        pass
    assert len(tracker.metric_history(run.id, "system/cpu_percent")) == 1
    assert not sampler_threads()


def test_environment_switch_and_interval(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELTRAIL_SYSTEM_METRICS", "1")
    monkeypatch.setenv("MODELTRAIL_SYSTEM_METRICS_INTERVAL", "0.05")
    tracker = modeltrail.Tracker(sqlite_url)
    with tracker.training("env") as run:
        wait_for(lambda: run._last_step.get("system/cpu_percent", -1) >= 1)
    assert len(tracker.metric_history(run.id, "system/cpu_percent")) >= 2
    with tracker.training("env", system_metrics=False) as off:  # the training's own choice wins
        pass
    assert not [k for k in tracker.get_training(off.id).metrics if k.startswith("system/")]


@pytest.mark.parametrize(
    ("env", "option", "error", "message"),
    [
        ({}, 0.0, ValidationError, "system_metrics must be True, False or an interval"),
        ({}, "yes", ValidationError, "system_metrics must be True, False or an interval"),
        ({"MODELTRAIL_SYSTEM_METRICS": "maybe"}, None, ConfigurationError, "METRICS must be 1 or 0, got 'maybe'"),
        ({"MODELTRAIL_SYSTEM_METRICS_INTERVAL": "soon"}, True, ConfigurationError, "_INTERVAL must be a number"),
        ({"MODELTRAIL_SYSTEM_METRICS_INTERVAL": "nan"}, True, ConfigurationError, "_INTERVAL must be a number"),
        ({"MODELTRAIL_SYSTEM_METRICS_INTERVAL": "0.01"}, True, ConfigurationError, r"seconds >= 0\.05, got '0\.01'"),
    ],
)
def test_bad_settings_are_refused_at_the_call_and_record_nothing(
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    option: Any,
    error: type[Exception],
    message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    tracker = modeltrail.Tracker(sqlite_url)
    with pytest.raises(error, match=message):
        tracker.training("bad", system_metrics=option)
    assert tracker.trainings() == [] and not sampler_threads()


def test_without_psutil(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_psutil(name: str, *args: Any) -> Any:
        if name == "psutil":
            raise ModuleNotFoundError("No module named 'psutil'", name="psutil")
        return real(name, *args)

    monkeypatch.setattr(_system.importlib, "import_module", no_psutil)
    monkeypatch.setattr(_system, "_warned", False)
    tracker = modeltrail.Tracker(sqlite_url)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "modeltrail\[system\]"'):
        tracker.training("asked", system_metrics=True)
    assert tracker.trainings() == []
    monkeypatch.setenv("MODELTRAIL_SYSTEM_METRICS", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracker.training("env") as run:
            pass
    (warning,) = [w for w in caught if issubclass(w.category, ModeltrailWarning)]
    assert 'pip install "modeltrail[system]"' in str(warning.message) and warning.filename == __file__
    assert tracker.get_training(run.id).status == "finished"


def test_gpu_metrics_through_nvml(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for nvidia-ml-py's ``pynvml`` (this machine has no NVIDIA driver): two devices."""
    calls: list[str] = []
    fake = types.ModuleType("pynvml")
    fake.nvmlInit = lambda: calls.append("init")  # type: ignore[attr-defined]
    fake.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    fake.nvmlDeviceGetCount = lambda: 2  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByIndex = lambda i: f"gpu-{i}"  # type: ignore[attr-defined]
    fake.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=37 if h == "gpu-0" else 5)  # type: ignore[attr-defined]
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=2 * 1024**3, total=8 * 1024**3)  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "pynvml", fake)
    tracker = modeltrail.Tracker(sqlite_url)
    with tracker.training("gpu", system_metrics=True) as run:
        pass
    m = tracker.get_training(run.id).metrics
    assert m["system/gpu0/utilization_percent"].last == 37.0 and m["system/gpu1/utilization_percent"].last == 5.0
    assert m["system/gpu0/memory_used_mb"].last == 2048.0 and m["system/gpu1/memory_percent"].last == 25.0
    assert calls == ["init", "shutdown"]


def test_a_sampler_whose_training_ended_stops_by_itself() -> None:
    logged: list[tuple[str, float, int]] = []

    def refuse(key: str, value: float, step: int) -> None:
        logged.append((key, value, step))
        raise ValidationError("training 1 is finished; cannot log metric", value=key)

    sampler = _system.Sampler(refuse, 0.02).start()
    wait_for(lambda: not sampler._thread.is_alive(), timeout=10)
    assert not sampler._thread.is_alive() and len(logged) == 1
    sampler.stop()
