"""The serving process: load what is deployed, record the instance, serve, follow the ledger, end cleanly.

One background thread does everything that touches the ledger, so no request ever waits on it:

* every heartbeat interval it marks the instance alive, and the same call answers what serves the
  environment now; when that is another deployment (a deploy, a rollback) it loads the new version
  fully, swaps it in with one attribute assignment, and records the switch (``serving.switch``);
* every metrics interval it writes what the :class:`~modeltrail.serve.meter.Meter` gathered
  (requests, errors, latency percentiles, the prediction distribution) as production metrics of the
  deployment that answered them.

A database outage is logged once and waited out: the loaded model keeps serving, metrics wait in
memory, the instance reads ``lost`` to others until heartbeats resume. SIGTERM or SIGINT stops
uvicorn gracefully; then the last metrics are written and the instance is ended ``stopped``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from .._errors import ConfigurationError, NotFoundError, ValidationError
from .app import Holder, Served, create_app
from .meter import Meter

if TYPE_CHECKING:
    from .._records import DeploymentRecord
    from .._tracker import Tracker

log = logging.getLogger("modeltrail.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_HEARTBEAT_S = 5.0
DEFAULT_METRICS_INTERVAL_S = 60.0
#: Seconds uvicorn lets requests in flight finish after SIGTERM.
GRACEFUL_S = 10


def load_version(tracker: Tracker, model: str, version: int) -> Any:
    """The model object of ``version``, fully loaded: fetched from the artifact store into the local cache
    and checked against the sha256 the ledger recorded before anything is deserialized."""
    return tracker.load_model(model, version=version)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a busy port fails before anything is recorded.

    It listens at once: a client that connects before uvicorn runs waits in the backlog, not refused.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be an integer from 0 to 65535, got {port!r}", value=port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said outright: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose protocol
    # says TCP, and with it on, a response written in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {e.strerror or e}", value=port) from e
    sock.set_inheritable(True)
    return sock


def public_host(host: str) -> str:
    """What the instance records as its host: the bound address, or this machine's name for a wildcard."""
    return socket.gethostname() if host.strip("[]") in ("", "0.0.0.0", "::") else host.strip("[]")


class ModelServer:
    """One ``modeltrail serve`` process for ``model`` in ``environment``.

    ``prepare()`` loads what is deployed, binds the port and records the instance; ``run()`` serves
    until SIGTERM/SIGINT and ends the instance. ``heartbeat_s`` and ``metrics_interval_s`` are how
    often the ledger is told the instance is alive and how often metrics are written.
    """

    def __init__(
        self,
        tracker: Tracker,
        model: str,
        environment: str,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        metrics_interval_s: float = DEFAULT_METRICS_INTERVAL_S,
        access_log: bool = False,
        log_level: str = "warning",
    ) -> None:
        for name, value in (("heartbeat interval", heartbeat_s), ("metrics interval", metrics_interval_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 86400:
                raise ValidationError(f"{name} must be a number of seconds above 0, at most 86400, got {value!r}")
        self.tracker = tracker
        self.model = model
        self.environment = environment
        self.host = host
        self.port = port
        self.heartbeat_s = float(heartbeat_s)
        self.metrics_interval_s = float(metrics_interval_s)
        self.access_log = access_log
        self.log_level = log_level
        self.meter = Meter()
        self.holder: Holder | None = None
        self.instance_id: int | None = None
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signal: str | None = None
        self._unrecorded_switch: tuple[int, str] | None = None  # (deployment id, reason) the ledger missed
        self._failed_load: int | None = None  # the version whose loading failed (logged once)

    # ------------------------------------------------------------ start
    def prepare(self) -> Served:
        """Load the deployed version, bind the port, record the instance; returns what is served."""
        deployment = self.tracker.deployment(self.model, self.environment)
        if deployment is None:
            raise NotFoundError(
                f"nothing of model {self.model!r} is deployed in {self.environment!r}: deploy a version first "
                f"(modeltrail deploy {self.model} VERSION --env {self.environment})",
                value=self.environment,
            )
        served = Served.of(
            load_version(self.tracker, deployment.model, deployment.version),
            name=deployment.model,
            environment=self.environment,
            version=deployment.version,
            deployment_id=deployment.id,
        )
        self._sock = bind(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        try:
            instance = self.tracker.start_serving(
                deployment.model, self.environment, deployment_id=deployment.id, host=public_host(self.host),
                port=self.port, pid=os.getpid(), heartbeat_s=self.heartbeat_s,
            )  # fmt: skip
        except BaseException:
            self._sock.close()
            raise
        self.instance_id = instance.id
        self.holder = Holder(served)
        self.holder.health.instance_id = instance.id
        self.holder.health.last_heartbeat = instance.heartbeat_at
        return served

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------ serve
    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then write the last metrics and end the instance ``stopped``."""
        if self.holder is None or self._sock is None or self.instance_id is None:
            self.prepare()
        assert self.holder is not None and self._sock is not None and self.instance_id is not None
        app = create_app(self.holder, self.meter)
        config = uvicorn.Config(
            app, log_level=self.log_level, access_log=self.access_log, server_header=False, lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_S,
        )  # fmt: skip
        server = uvicorn.Server(config)
        # uvicorn handles both signals while it runs, then restores these and raises the signal again:
        # they only note which one it was, so the process gets here and ends the instance itself.
        previous = {sig: signal.signal(sig, self._note_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        self._thread = threading.Thread(target=self._loop, name="modeltrail-serve", daemon=True)
        self._thread.start()
        failure: BaseException | None = None
        try:
            server.run(sockets=[self._sock])
        except BaseException as e:
            failure = e
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._finish(failure)

    def _note_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signal = signal.Signals(sig).name

    def _finish(self, failure: BaseException | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._sock is not None:
            self._sock.close()
        self._write_metrics()
        state, reason = "stopped", f"{self._signal or 'shutdown'}"
        if failure is not None and not isinstance(failure, KeyboardInterrupt):
            state, reason = "failed", f"{type(failure).__name__}: {failure}"
        assert self.instance_id is not None
        try:
            self.tracker.end_serving(self.instance_id, state=state, reason=reason)
        except Exception as e:
            log.warning("could not record the end of serving instance %s: %s", self.instance_id, e)

    # ------------------------------------------------------------ the background task
    def _loop(self) -> None:
        next_write = time.monotonic() + self.metrics_interval_s
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.tick()
                if time.monotonic() >= next_write:
                    next_write = time.monotonic() + self.metrics_interval_s
                    self._write_metrics()
            except Exception:  # the task must outlive anything; the server keeps serving
                log.exception("modeltrail serve: the background task failed once; it carries on")

    def tick(self) -> None:
        """One heartbeat: tell the ledger the instance is alive and follow a deploy or rollback."""
        assert self.holder is not None and self.instance_id is not None
        health = self.holder.health
        try:
            active = self.tracker.serving_heartbeat(self.instance_id)
        except Exception as e:
            if health.database != "unreachable":
                log.warning("the ledger is unreachable (%s); version %s keeps serving", e, self.holder.current.version)
            health.database = "unreachable"
            return
        if health.database != "ok":
            log.warning("the ledger is reachable again")
        health.database, health.last_heartbeat = "ok", dt.datetime.now(dt.timezone.utc)
        health.deployed = active is not None
        if active is None:
            return
        self._follow(active)
        if self._unrecorded_switch is not None:
            self._record_switch(*self._unrecorded_switch)

    def _follow(self, active: DeploymentRecord) -> None:
        """Serve ``active`` if it is another deployment than the one served: load it fully, then swap."""
        assert self.holder is not None
        current, health = self.holder.current, self.holder.health
        if active.id == current.deployment_id:
            health.pending_version = None
            return
        if active.version == current.version:
            model = current.model  # the same version deployed again (or restored): nothing to load
        else:
            health.pending_version = active.version
            try:
                model = load_version(self.tracker, active.model, active.version)
            except Exception as e:
                health.load_error = f"version {active.version}: {e}"
                if self._failed_load != active.version:
                    log.warning("cannot load version %s (%s); version %s keeps serving", active.version, e,
                                current.version)  # fmt: skip
                    self._failed_load = active.version
                return
        self.holder.current = Served.of(
            model, name=active.model, environment=self.environment, version=active.version, deployment_id=active.id
        )
        health.pending_version, health.load_error, self._failed_load = None, None, None
        reason = f"{active.action} of version {active.version} (deployment {active.id})"
        log.warning("switched from version %s to version %s: %s", current.version, active.version, reason)
        self._record_switch(active.id, reason)

    def _record_switch(self, deployment_id: int, reason: str) -> None:
        assert self.instance_id is not None
        try:
            self.tracker.record_serving_switch(self.instance_id, deployment_id, reason=reason)
        except Exception as e:
            log.warning("could not record the switch to deployment %s yet: %s", deployment_id, e)
            self._unrecorded_switch = (deployment_id, reason)
        else:
            self._unrecorded_switch = None

    def _write_metrics(self) -> None:
        """Write each deployment's window as production metrics; what the ledger did not take waits."""
        assert self.holder is not None
        name = self.holder.current.name
        windows = self.meter.take()
        left = dict(windows)
        try:
            for deployment_id, window in windows.items():
                values = window.metrics()
                if values:
                    self.tracker.log_production_metrics(name, self.environment, values, deployment_id=deployment_id)
                del left[deployment_id]
        except Exception as e:
            log.warning("production metrics wait in memory; the ledger did not take them: %s", e)
            self.meter.put_back(left)
