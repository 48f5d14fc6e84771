"""The model server's FastAPI application: ``/predict``, ``/health``, ``/version``.

Handlers read the model being served from a :class:`Holder` once per request (one attribute read, so
a switch never mixes two versions in one answer), predict in a worker thread, and never touch the
database: what they measure goes to the :class:`~modeltrail.serve.meter.Meter`, and health reports
what the background task last saw.
Every answer, errors and 404s included, carries ``X-Modeltrail-Version``: the version that answered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from .inputs import BadInput, features, wants_proba
from .meter import Meter

VERSION_HEADER = "X-Modeltrail-Version"
_HEADER_KEY = VERSION_HEADER.lower().encode()


@dataclasses.dataclass(frozen=True)
class Served:
    """A loaded model and the deployment it answers for; replaced whole on a switch, never changed."""

    model: Any
    name: str
    environment: str
    version: int
    deployment_id: int
    loaded_at: dt.datetime
    classifier: bool
    proba: bool
    feature_names: tuple[str, ...] | None

    @classmethod
    def of(cls, model: Any, *, name: str, environment: str, version: int, deployment_id: int) -> Served:
        names = getattr(model, "feature_names_in_", None)
        return cls(
            model=model,
            name=name,
            environment=environment,
            version=version,
            deployment_id=deployment_id,
            loaded_at=dt.datetime.now(dt.timezone.utc),
            classifier=hasattr(model, "classes_"),
            proba=callable(getattr(model, "predict_proba", None)),
            feature_names=tuple(str(n) for n in names) if names is not None else None,
        )


@dataclasses.dataclass
class Health:
    """What the background task last saw of the ledger (written by it, read by ``/health``)."""

    instance_id: int | None = None
    database: str = "ok"  # or "unreachable"
    last_heartbeat: dt.datetime | None = None
    deployed: bool = True  # False once the environment's deployment was retired (the last model keeps serving)
    pending_version: int | None = None  # a version deployed but not loaded (yet, or because loading failed)
    load_error: str | None = None


class Holder:
    """The one place requests find the model: ``current`` is swapped whole by the background task."""

    def __init__(self, served: Served) -> None:
        self.current = served
        self.health = Health()


class VersionHeader:
    """Adds ``X-Modeltrail-Version`` to every answer that has not set it (the version serving now)."""

    def __init__(self, app: ASGIApp, holder: Holder) -> None:
        self.app = app
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == _HEADER_KEY for k, _ in headers):
                    headers.append((_HEADER_KEY, str(self.holder.current.version).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)


def _json(body: Any, status: int = 200, version: int | None = None) -> Response:
    headers = {VERSION_HEADER: str(version)} if version is not None else None
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(message: str, status: int, version: int) -> Response:
    return _json({"error": message, "status": status}, status, version)


def create_app(holder: Holder, meter: Meter) -> Any:
    """The ASGI application over ``holder``'s model, measuring into ``meter``."""
    app = FastAPI(title="modeltrail model server", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        """Predictions (``predict``), or class probabilities (``predict_proba``) with ``?proba=true``."""
        served = holder.current
        started = time.perf_counter()
        body = await request.body()
        # In a worker thread, as MLflow's server does: estimators release the GIL in their compiled
        # loops, so concurrent requests overlap, and the event loop stays free for /health.
        return await run_in_threadpool(answer, served, body, request.query_params.get("proba"), started)

    def answer(served: Served, body: bytes, proba_query: str | None, started: float) -> Response:
        try:
            try:
                payload = json.loads(body)
            except ValueError as e:
                raise BadInput(f"the body is not JSON: {e}") from e
            proba = wants_proba(payload, proba_query)
            if proba and not served.proba:
                raise BadInput(f"version {served.version} of {served.name!r} has no predict_proba", 422)
            x = features(payload, served.feature_names)
            try:
                if proba:
                    probabilities = served.model.predict_proba(x)
                    predictions = served.model.classes_[probabilities.argmax(axis=1)]
                else:
                    predictions = served.model.predict(x)
            except (ValueError, TypeError, KeyError) as e:  # what estimators raise for input they cannot use
                raise BadInput(f"the model refused the input: {' '.join(str(e).split())}", 422) from e
        except BadInput as e:
            meter.failed(served.deployment_id)
            return _error(str(e), e.status, served.version)
        except Exception as e:
            meter.failed(served.deployment_id)
            return _error(f"prediction failed: {type(e).__name__}: {e}", 500, served.version)
        result: dict[str, Any] = {"predictions": predictions.tolist()}
        if proba:
            result["probabilities"] = probabilities.tolist()
            result["classes"] = served.model.classes_.tolist()
        response = _json(result, version=served.version)
        meter.answered(served.deployment_id, time.perf_counter() - started, predictions, classifier=served.classifier)
        return response

    @app.get("/health")
    async def health() -> Response:
        """200 while a model is loaded, which is as long as the process runs; the ledger's state beside it."""
        served, seen = holder.current, holder.health
        return _json(
            {
                "status": "ok",
                "model": served.name,
                "environment": served.environment,
                "version": served.version,
                "instance_id": seen.instance_id,
                "database": seen.database,
                "last_heartbeat": seen.last_heartbeat.isoformat() if seen.last_heartbeat else None,
                "deployed": seen.deployed,
                "pending_version": seen.pending_version,
                "load_error": seen.load_error,
            },
            version=served.version,
        )

    @app.get("/version")
    async def version() -> Response:
        """The version serving now, its deployment, and when this process loaded it."""
        served = holder.current
        return _json(
            {
                "model": served.name,
                "environment": served.environment,
                "version": served.version,
                "deployment_id": served.deployment_id,
                "instance_id": holder.health.instance_id,
                "loaded_at": served.loaded_at.isoformat(),
                "classifier": served.classifier,
                "features": list(served.feature_names) if served.feature_names else None,
                "modeltrail": __version__,
            },
            version=served.version,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(str(exc.detail), exc.status_code, holder.current.version)

    app.add_middleware(VersionHeader, holder=holder)
    return app


__all__ = ["VERSION_HEADER", "Health", "Holder", "Served", "create_app"]
