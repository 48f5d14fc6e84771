"""Traceability: where a version came from, where it went, and what retraining it needs.

Forward: dataset -> training (code commit, environment, params) -> version -> deployments.
Backward: which versions were trained on a dataset digest, and which environments serve them now.
Reproduction: the recorded code, command line, interpreter, packages, params, seeds and data of a
version, and every way the current environment differs from it.

Reads only, on an open session, like :mod:`modeltrail._read.queries`; digests reach SQL as bound parameters.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._errors import ValidationError
from .._records import DatasetUse, DeploymentRecord, Difference, Lineage, RecordList, Reproduction
from .._rows import ACTIVE, resolve_model, resolve_version, version_record
from .deployments import deployments_of_version, serving_environments, serving_versions
from .evaluations import evaluations_of_version
from .queries import dataset_record, trainings_by_id

#: A digest prefix shorter than this would match unrelated datasets by accident.
MIN_DIGEST_PREFIX = 6


def lineage(s: Session, model_ref: Any, number: int | None) -> Lineage:
    """The chain behind and after version ``number`` (the latest when None) of a model."""
    model = resolve_model(s, model_ref)
    row = resolve_version(s, model, number)
    parent = s.get(schema.VersionRow, row.parent_id) if row.parent_id is not None else None
    version = version_record(model.name, row, parent.number if parent is not None else None)
    training = trainings_by_id(s, [row.training_id])[row.training_id]
    deployments = deployments_of_version(s, row.id)
    evaluations = evaluations_of_version(s, row.id)
    context = training.context or {}
    return Lineage(
        model=model.name,
        version=version,
        dataset=training.dataset,
        training=training,
        code=dict(context.get("git") or {}),
        environment={k: context.get(k) for k in ("python", "implementation", "platform", "command", "cwd", "packages")},
        deployments=deployments,
        environments=sorted({dep.environment for dep in deployments if dep.status == ACTIVE}),
        evaluations=evaluations,
    )


def check_digest(digest: Any) -> str:
    if not isinstance(digest, str) or len(digest.strip()) < MIN_DIGEST_PREFIX or len(digest) > 64:
        raise ValidationError(
            f"a dataset digest (or a prefix of at least {MIN_DIGEST_PREFIX} characters) is expected, got {digest!r}",
            value=digest,
        )
    return digest.strip().lower()


def trained_on(s: Session, digest: str) -> RecordList[DatasetUse]:
    """Every version, of any model, whose training used a dataset with this digest (or digest prefix)."""
    prefix = check_digest(digest)
    v, t, m, ds = schema.VersionRow, schema.TrainingRow, schema.ModelRow, schema.DatasetRow
    rows = s.execute(
        select(m.name, v.number, v.id, v.training_id, ds)
        .join(t, t.id == v.training_id)
        .join(ds, ds.id == t.dataset_id)
        .join(m, m.id == v.model_id)
        .where(ds.digest.startswith(prefix, autoescape=True))
        .order_by(m.name, v.number)
    ).all()
    serving = serving_environments(s, version_ids=[r[2] for r in rows]) if rows else {}
    out: RecordList[DatasetUse] = RecordList()
    for name, number, version_id, training_id, dataset in rows:
        found = dataset_record(dataset)
        assert found is not None
        out.append(
            DatasetUse(
                model=name,
                version=number,
                training_id=training_id,
                dataset=found,
                environments=serving.get(version_id, []),
            )
        )
    return out


def serving_trained_on(s: Session, digest: str) -> RecordList[DeploymentRecord]:
    """The active deployments, in every environment, of versions trained on this dataset digest (or prefix)."""
    prefix = check_digest(digest)
    v, t, ds = schema.VersionRow, schema.TrainingRow, schema.DatasetRow
    trained = (
        select(v.id)
        .join(t, t.id == v.training_id)
        .join(ds, ds.id == t.dataset_id)
        .where(ds.digest.startswith(prefix, autoescape=True))
    )
    return serving_versions(s, trained)


# ------------------------------------------------------------------ reproduction
def reproduction(s: Session, model_ref: Any, number: int | None) -> Reproduction:
    """What retraining version ``number`` needs, as recorded when it was trained."""
    model = resolve_model(s, model_ref)
    row = resolve_version(s, model, number)
    training = trainings_by_id(s, [row.training_id])[row.training_id]
    context = training.context or {}
    git = context.get("git") or {}
    command = context.get("command")
    return Reproduction(
        model=model.name,
        version=row.number,
        training_id=training.id,
        git_commit=git.get("commit") or training.git_commit,
        git_branch=git.get("branch"),
        git_dirty=git.get("dirty"),
        git_root=git.get("root"),
        command=[str(c) for c in command] if isinstance(command, list) else None,
        cwd=context.get("cwd"),
        python=context.get("python"),
        platform=context.get("platform"),
        packages={str(k): str(v) for k, v in sorted((context.get("packages") or {}).items())},
        params=dict(sorted(training.params.items())),
        seeds=dict(context.get("seeds") or {}),
        dataset=training.dataset,
    )


def current_environment(cwd: str | None = None) -> dict[str, Any]:
    """The facts :func:`differences` compares, read from this process and the git tree around ``cwd``."""
    from .._context import git_state, package_versions

    return {
        "git": git_state(cwd or os.getcwd()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
    }


def differences(
    recorded: Reproduction, current: Mapping[str, Any] | None = None, *, dataset_digest: str | None = None
) -> list[Difference]:
    """Every way ``current`` (this environment by default) differs from what the version was trained with.

    Compared: the git commit, uncommitted changes then and now, the Python version, the platform,
    each key package (changed, missing now, or new), and the dataset digest when one is given.
    Params and seeds are the recorded ones by definition; they are printed, not compared.
    """
    now = current_environment() if current is None else current
    git = now.get("git") or {}
    out: list[Difference] = []

    def differ(what: str, then: Any, today: Any) -> None:
        if then != today:
            out.append(Difference(what=what, recorded=then, current=today))

    differ("git.commit", recorded.git_commit, git.get("commit"))
    if recorded.git_dirty:
        out.append(Difference(what="git.dirty", recorded=True, current=bool(git.get("dirty"))))
    elif git.get("dirty"):
        out.append(Difference(what="git.dirty", recorded=recorded.git_dirty, current=True))
    differ("python", recorded.python, now.get("python"))
    differ("platform", recorded.platform, now.get("platform"))
    packages = now.get("packages") or {}
    for name in sorted(set(recorded.packages) | set(packages)):
        differ(f"package {name}", recorded.packages.get(name), packages.get(name))
    if dataset_digest is not None:
        differ("dataset.digest", recorded.dataset.digest if recorded.dataset else None, dataset_digest)
    return out
