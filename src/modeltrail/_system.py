"""System metrics: what the machine did while a training ran, sampled by a background thread.

Opt in per training (``tracker.training(..., system_metrics=True)``, or a number: the interval in seconds) or
for every training of the process with ``MODELTRAIL_SYSTEM_METRICS=1`` (interval
``MODELTRAIL_SYSTEM_METRICS_INTERVAL``, default 10 s). Each sample goes through the training's ordinary
``log_metric`` (queued, written by the store's writer) at step 0, 1, 2, ...:

* ``system/cpu_percent`` (the host's, since the previous sample), ``system/process_cpu_percent``,
  ``system/process_rss_mb``, ``system/memory_percent`` (host memory in use), ``system/memory_used_mb``;
* ``system/disk_read_mb``, ``system/disk_write_mb``, ``system/network_sent_mb``, ``system/network_recv_mb``:
  bytes moved since the training started (host-wide counters), in MB;
* with NVIDIA's management library (``nvidia-ml-py``) and a GPU: ``system/gpu<i>/utilization_percent``,
  ``system/gpu<i>/memory_used_mb`` and ``system/gpu<i>/memory_percent`` per device.

The first sample is taken one interval after the start and the last one when the training ends, so even a
short training has one. The sampler never blocks the training: it sleeps on an event, and a failing probe is
left out of later samples. psutil (``pip install "modeltrail[system]"``) is imported only when enabled.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

from ._errors import ConfigurationError, ModeltrailWarning, ValidationError
from ._values import env_seconds

ENV = "MODELTRAIL_SYSTEM_METRICS"
ENV_INTERVAL = "MODELTRAIL_SYSTEM_METRICS_INTERVAL"
DEFAULT_INTERVAL = 10.0
MIN_INTERVAL = 0.05
_MB = 1024.0 * 1024.0
log = logging.getLogger("modeltrail.system")

Log = Callable[[str, float, int], None]


def requested(option: bool | float | None) -> float | None:
    """The sampling interval in seconds, or None when system metrics are off for this training.

    ``option`` is the training's own choice (True, False, or an interval); None defers to ``MODELTRAIL_SYSTEM_METRICS``.
    A bad option is a :class:`ValidationError`, a bad environment variable a :class:`ConfigurationError`,
    each naming the value and raised when the training is started.
    """
    if option is None:
        flag = os.environ.get(ENV, "").strip().lower()
        if flag in ("", "0", "false", "no", "off"):
            return None
        if flag not in ("1", "true", "yes", "on"):
            raise ConfigurationError(f"{ENV} must be 1 or 0, got {flag!r}", value=flag)
        return _env_interval()
    if option is False:
        return None
    if option is True:
        return _env_interval()
    if isinstance(option, (int, float)) and not isinstance(option, bool) and option >= MIN_INTERVAL:
        return float(option)
    raise ValidationError(
        f"system_metrics must be True, False or an interval of at least {MIN_INTERVAL} seconds, got {option!r}",
        value=option,
    )


def _env_interval() -> float:
    return env_seconds(ENV_INTERVAL, DEFAULT_INTERVAL, minimum=MIN_INTERVAL)


def load_psutil() -> Any:
    """psutil, or ModuleNotFoundError naming the extra to install."""
    try:
        return importlib.import_module("psutil")
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(f'system metrics need psutil: pip install "modeltrail[system]" ({e})') from e


class Sampler:
    """One training's sampler thread: :meth:`start` it with the training, :meth:`stop` it when the training ends."""

    def __init__(self, log_metric: Log, interval: float, *, name: str = "modeltrail-system-metrics") -> None:
        self._psutil = load_psutil()
        self._log = log_metric
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._step = 0
        self._dead = False  # logging was refused (the training ended): no more samples
        self._broken: set[str] = set()
        self._process = self._psutil.Process()
        self._gpus = _nvml_devices()
        self._disk0 = self._counter("disk", self._psutil.disk_io_counters)
        self._net0 = self._counter("network", self._psutil.net_io_counters)
        self._psutil.cpu_percent(None)  # the first call only starts the measurement
        self._process.cpu_percent(None)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Take the last sample and end the thread (waits at most ``timeout`` seconds for it)."""
        if not self._stop.is_set():
            self._stop.set()
            if self._thread.is_alive() and self._thread is not threading.current_thread():
                self._thread.join(timeout)
        self._shutdown_nvml()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
        self.sample()  # the training ended: one last sample, so a short training has one too

    def sample(self) -> dict[str, float]:
        """Read every probe once and log the values at the next step; returns what was logged."""
        if self._dead:
            return {}
        values: dict[str, float] = {}
        ps = self._psutil
        self._probe("cpu", values, lambda: {"cpu_percent": ps.cpu_percent(None)})
        self._probe(
            "process",
            values,
            lambda: {
                "process_cpu_percent": self._process.cpu_percent(None),
                "process_rss_mb": self._process.memory_info().rss / _MB,
            },
        )
        self._probe("memory", values, self._memory)
        self._probe("disk", values, self._disk)
        self._probe("network", values, self._network)
        for index, handle in self._gpus:
            self._probe(f"gpu{index}", values, functools.partial(_gpu, index, handle))
        step, self._step = self._step, self._step + 1
        for key, value in values.items():
            try:
                self._log(f"system/{key}", float(value), step)
            except Exception as e:  # the training ended under us, or the value was refused: stop quietly
                log.debug("system metric %s not logged: %s", key, e)
                self._dead = True
                self._stop.set()
                return {}
        return values

    # ------------------------------------------------------------- probes
    def _probe(self, name: str, into: dict[str, float], read: Callable[[], dict[str, float]]) -> None:
        if name in self._broken:
            return
        try:
            into.update(read())
        except Exception as e:
            self._broken.add(name)  # e.g. no disk counters in a container: left out from now on
            log.debug("system metric probe %s failed: %s", name, e)

    def _counter(self, name: str, read: Callable[[], Any]) -> Any:
        try:
            counters = read()
        except Exception as e:
            counters = None
            log.debug("system metric probe %s failed: %s", name, e)
        if counters is None:
            self._broken.add(name)
        return counters

    def _memory(self) -> dict[str, float]:
        memory = self._psutil.virtual_memory()
        return {"memory_percent": memory.percent, "memory_used_mb": (memory.total - memory.available) / _MB}

    def _disk(self) -> dict[str, float]:
        now, start = self._psutil.disk_io_counters(), self._disk0
        return {
            "disk_read_mb": (now.read_bytes - start.read_bytes) / _MB,
            "disk_write_mb": (now.write_bytes - start.write_bytes) / _MB,
        }

    def _network(self) -> dict[str, float]:
        now, start = self._psutil.net_io_counters(), self._net0
        return {
            "network_sent_mb": (now.bytes_sent - start.bytes_sent) / _MB,
            "network_recv_mb": (now.bytes_recv - start.bytes_recv) / _MB,
        }

    def _shutdown_nvml(self) -> None:
        if self._gpus:
            self._gpus = []
            try:
                importlib.import_module("pynvml").nvmlShutdown()
            except Exception as e:
                log.debug("nvmlShutdown failed: %s", e)


def _nvml_devices() -> list[tuple[int, Any]]:
    """(index, handle) of each NVIDIA GPU, or none without nvidia-ml-py, a driver or a device."""
    try:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
        return [(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(nvml.nvmlDeviceGetCount())]
    except Exception as e:  # ModuleNotFoundError, NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded...
        log.debug("no GPU metrics: %s", e)
        return []


def _gpu(index: int, handle: Any) -> dict[str, float]:
    nvml = importlib.import_module("pynvml")
    rates = nvml.nvmlDeviceGetUtilizationRates(handle)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return {
        f"gpu{index}/utilization_percent": float(rates.gpu),
        f"gpu{index}/memory_used_mb": memory.used / _MB,
        f"gpu{index}/memory_percent": 100.0 * memory.used / memory.total if memory.total else 0.0,
    }


def plan(option: bool | float | None) -> float | None:
    """Check a training's ``system_metrics=`` when it is started, before anything is recorded: the interval, or None.

    An explicit request without psutil raises the install hint; the environment's switch without it warns once
    and the training runs without system metrics.
    """
    interval = requested(option)
    if interval is None:
        return None
    try:
        load_psutil()
    except ModuleNotFoundError as e:
        if option is not None:
            raise
        _warn_once(f"modeltrail: {ENV}=1 but {e}; trainings run without system metrics")
        return None
    return interval


def start(log_metric: Log, interval: float | None) -> Sampler | None:
    """The running sampler of a training whose :func:`plan` gave an interval (else None)."""
    return Sampler(log_metric, interval).start() if interval is not None else None


_warned = False


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, ModeltrailWarning, stacklevel=5)
