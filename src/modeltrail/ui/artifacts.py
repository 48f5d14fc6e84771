"""Downloading a version's artifacts from the dashboard: fetched and verified by sha256 like ``load_model``.

A file is sent as it was logged (its original name); a directory as a ZIP of its verified files.
Registered before the pages, whose ``/models/{model}`` route takes any path under it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from .api import Ledger, by_ref

router = APIRouter(include_in_schema=False)


def download_url(model_id: int, version: int, name: str) -> str:
    from urllib.parse import quote

    return f"/models/{model_id}/versions/{version}/artifacts/{quote(name, safe='')}"


@router.get("/models/{model:path}/versions/{version:int}/artifacts/{name:path}")
def download_artifact(tracker: Ledger, model: str, version: int, name: str) -> Response:
    """The artifact ``name`` of ``version``, verified against the ledger before it is sent."""
    found = by_ref(model, lambda ref: tracker.download_model(ref, version=version, artifact=name))
    path = Path(found.path)
    filename = Path(found.artifact.source_path or name).name or name
    if not path.is_dir():
        media = found.artifact.media_type or "application/octet-stream"
        return FileResponse(path, filename=filename, media_type=media)
    folder = tempfile.mkdtemp(prefix="modeltrail-zip-")
    archive = shutil.make_archive(str(Path(folder) / filename), "zip", root_dir=path)
    cleanup = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
    return FileResponse(archive, filename=f"{filename}.zip", media_type="application/zip", background=cleanup)
