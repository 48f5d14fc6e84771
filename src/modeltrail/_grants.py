"""Least privilege on MySQL/MariaDB: the GRANT statements for modeltrail's three roles.

* ``writer`` — training jobs: read everything, insert what a training produces,
  update only what a training owns (its own row, param/summary upserts, the model
  row it locks to number a version). No deployments, no deletes.
* ``operator`` — deploys, rolls back and retires: the writer's reads plus inserts and
  status changes on deployments and production metrics.
* ``analyst`` — read-only.

Nobody gets UPDATE or DELETE on ``audit_events``: the trail stays append-only even
for a compromised training job.
"""

from __future__ import annotations

import re

from . import _schema as schema
from ._errors import ValidationError

ROLES = ("writer", "operator", "analyst")

#: table -> privileges beyond SELECT, per role.
_WRITER = {
    "models": "INSERT, UPDATE",
    "model_tags": "INSERT, UPDATE",
    "datasets": "INSERT, UPDATE",
    "trainings": "INSERT, UPDATE",
    "params": "INSERT, UPDATE",
    "metric_keys": "INSERT, UPDATE",
    "metric_points": "INSERT",
    "metric_summaries": "INSERT, UPDATE",
    "ingested_batches": "INSERT",
    "versions": "INSERT",
    "stages": "INSERT, UPDATE",
    "evaluations": "INSERT",
    "evaluation_metrics": "INSERT",
    "audit_events": "INSERT",
}
_OPERATOR = {
    "models": "UPDATE",  # the row lock that serialises deploys to one model
    "metric_keys": "INSERT, UPDATE",
    "deployments": "INSERT, UPDATE",
    "production_metrics": "INSERT",
    "audit_events": "INSERT",
}
_NAME = re.compile(r"^[A-Za-z0-9_$.\-]{1,64}$")


def _quote_ident(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ValidationError(f"{what} {name!r} may only use letters, digits, '_', '$', '.', '-'", value=name)
    return f"`{name}`"


def _quote_account(user: str, host: str) -> str:
    for part, what in ((user, "user name"), (host, "host")):
        if not re.match(r"^[A-Za-z0-9_.%\-]{1,64}$", part):
            raise ValidationError(f"{what} {part!r} may only use letters, digits, '_', '.', '%', '-'", value=part)
    return f"'{user}'@'{host}'"


def grant_statements(
    database: str,
    *,
    writer: str = "modeltrail_writer",
    operator: str = "modeltrail_operator",
    analyst: str = "modeltrail_analyst",
    host: str = "%",
) -> list[str]:
    """GRANT statements (users must exist: ``CREATE USER ... IDENTIFIED BY ...`` is left to the DBA)."""
    db = _quote_ident(database, "database name")
    tables = sorted(t.name for t in schema.Base.metadata.sorted_tables)
    out: list[str] = []
    for role, user, extra in (("writer", writer, _WRITER), ("operator", operator, _OPERATOR), ("analyst", analyst, {})):
        account = _quote_account(user, host)
        out.append(f"-- {role}")
        out.append(f"GRANT SELECT ON {db}.`{schema.VERSION_TABLE}` TO {account};")
        for table in tables:
            privileges = ", ".join(["SELECT", *filter(None, [extra.get(table)])])
            out.append(f"GRANT {privileges} ON {db}.`{table}` TO {account};")
    return out
