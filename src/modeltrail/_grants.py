"""Least privilege: the statements that give modeltrail's three roles exactly their job (MySQL/MariaDB, PostgreSQL).

* ``writer`` — training jobs: read everything; insert trainings and what they produce (params,
  metrics, stages, datasets, versions, evaluations); update only what a running training owns:
  its status columns at finish, its metric summaries, the model tags it sets, the model fields
  nobody filled yet, and marks its artifacts stored; and, once, the model of the version a
  training became on that training's summaries. No deployments, no deletes.
* ``operator`` — deploys, rolls back and retires: reads, inserts deployments and production
  metrics, changes only ``status``/``ended_at`` of the active deployment; sets and removes
  version aliases and tags, writes version notes; records its ``modeltrail serve`` instances.
* ``analyst`` — read-only.

Three layers, because GRANT alone cannot say it all:

1. column-level GRANTs (the columns each role may update, no more);
2. guard triggers, ``BEFORE UPDATE``, refusing for these three users any change the role has no
   business making: a finished training, a summary of a finished training, an ended deployment,
   a model's name, a param, a metric name. MariaDB needs them: its ``INSERT ... ON DUPLICATE KEY
   UPDATE`` wants UPDATE on every inserted column (so an upserting role holds UPDATE on whole rows)
   and, given no column list, checks no column at all; and no GRANT restricts rows;
3. an audit trigger, ``BEFORE INSERT ON audit_events``, stamping every event with the real database
   user and the server's clock, for everyone: an event can be added, never back-dated or signed
   with another name. Nobody has UPDATE or DELETE there.

The triggers are created by whoever runs these statements (they need the TRIGGER privilege; with
binary logging on MySQL, ``log_bin_trust_function_creators``); they name the three users, so
running the statements again with other names moves the guards to them. SQLite has no users.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from . import _schema as schema
from ._errors import ConfigurationError, ValidationError

ROLES = ("writer", "operator", "analyst")
DIALECTS = ("mysql", "postgresql")


@dataclass(frozen=True)
class Access:
    """Beyond SELECT: may the role INSERT, and which columns may it UPDATE."""

    insert: bool = True
    update: tuple[str, ...] = ()
    delete: bool = False


_TRAINING_END = (
    "status", "ended_at", "duration_s", "error", "artifact_path", "artifact_sha256", "artifact_size", "context",
    "dataset_id",
)  # fmt: skip
_SUMMARY = (
    "count", "last_step", "last_value", "last_kind", "min_step", "min_value", "min_kind", "max_step", "max_value",
    "max_kind", "updated_ts",
)  # fmt: skip
_BLOCK = (
    "count", "min_step", "min_value", "min_kind", "min_ts", "max_step", "max_value", "max_kind", "max_ts",
)  # fmt: skip
_MODEL_FILL = ("framework", "model_type", "description")
_ARTIFACT_ROW = (
    "kind", "sha256", "size", "files", "media_type", "role", "flavor", "flavor_info", "source_path", "store_url", "key",
    "state", "created_at", "stored_at",
)  # fmt: skip

#: Tables the roles upsert. MariaDB checks ``INSERT ... ON DUPLICATE KEY UPDATE`` against UPDATE on every
#: column of the INSERT's column list (and on none without a list), so there the role needs UPDATE on all
#: of them and the guard trigger, not the GRANT, decides what may change.
_MYSQL_UPSERTED = frozenset(
    {"datasets", "params", "metric_keys", "metric_summaries", "metric_blocks", "model_tags", "stages", "artifacts",
     "ledger_settings", "version_aliases", "version_tags", "version_notes"}
)  # fmt: skip
#: PostgreSQL's ``SELECT ... FOR UPDATE`` needs UPDATE on some column of the locked table: the primary key,
#: which the guard keeps unchanged.
_PG_LOCK = {"writer": ("models", "versions"), "operator": ("models",)}

_WRITER = {
    "models": Access(update=_MODEL_FILL),
    "model_tags": Access(update=("value",)),
    "datasets": Access(),
    "trainings": Access(update=_TRAINING_END),
    "params": Access(),
    "metric_keys": Access(),
    "metric_points": Access(),
    # Making a version marks its training's summaries with the model (the leaderboard indexes), once.
    "metric_summaries": Access(update=(*_SUMMARY, "model_id")),
    "metric_blocks": Access(update=_BLOCK),
    "ingested_batches": Access(),
    "versions": Access(),
    "stages": Access(),
    "evaluations": Access(),
    "evaluation_metrics": Access(),
    "audit_events": Access(),
    # A training's artifacts: a name logged again replaces its row (an upsert), and the writer thread marks
    # them stored once the store has their bytes.
    "artifacts": Access(update=_ARTIFACT_ROW),
    "ledger_settings": Access(),
}
_OPERATOR = {
    "metric_keys": Access(),
    "deployments": Access(update=("status", "ended_at")),
    "production_metrics": Access(),
    "audit_events": Access(),
    # Aliases, tags and notes on versions are a person's registry work, like deployments.
    "version_aliases": Access(update=("version_id", "set_at", "set_by"), delete=True),
    "version_tags": Access(update=("value",), delete=True),
    "version_notes": Access(update=("description", "updated_at", "updated_by")),
    # `modeltrail serve` runs as the operator: it records its instance, beats, follows deploys and ends.
    "serving_instances": Access(
        update=("deployment_id", "version_id", "heartbeat_at", "state", "ended_at", "end_reason")
    ),
}

Same = Callable[[str], str]
#: table -> (columns a role may change, the row condition given the dialect's "unchanged", what the refusal says).
_GUARDS: dict[str, tuple[tuple[str, ...], Callable[[Same], str], str]] = {
    "trainings": (_TRAINING_END, lambda _: "OLD.status = 'running'", "only a running training may change"),
    "metric_summaries": (
        (*_SUMMARY, "model_id"),
        lambda same: (
            f"((SELECT t.status FROM trainings t WHERE t.id = OLD.training_id) = 'running' AND {same('model_id')})"
            " OR (OLD.model_id IS NULL"
            " AND COALESCE(NEW.model_id = (SELECT v.model_id FROM versions v WHERE v.training_id = OLD.training_id),"
            " FALSE)"
            f" AND {' AND '.join(same(c) for c in _SUMMARY)})"
        ),
        "only summaries of a running training may change; the model of its version is set once",
    ),
    "metric_blocks": (
        _BLOCK,
        lambda _: "(SELECT t.status FROM trainings t WHERE t.id = OLD.training_id) = 'running'",
        "only blocks of a running training may change",
    ),
    "models": (
        _MODEL_FILL,
        lambda same: " AND ".join(f"(OLD.{c} IS NULL OR {same(c)})" for c in _MODEL_FILL),
        "a model keeps its name and the fields already set",
    ),
    "model_tags": (("value",), lambda _: "", "a tag keeps its model and key"),
    "deployments": (("status", "ended_at"), lambda _: "OLD.status = 'active'", "only the active deployment may end"),
    "datasets": ((), lambda _: "", "a dataset never changes"),
    "params": ((), lambda _: "", "params never change"),
    "metric_keys": ((), lambda _: "", "metric names never change"),
    "stages": ((), lambda _: "", "stages never change"),
    "versions": ((), lambda _: "", "versions never change"),
}
_NAME = re.compile(r"^[A-Za-z0-9_$.\-]{1,64}$")
_ACCOUNT_PART = re.compile(r"^[A-Za-z0-9_.%\-]{1,64}$")
_PG_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


def _quote_ident(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ValidationError(f"{what} {name!r} may only use letters, digits, '_', '$', '.', '-'", value=name)
    return f"`{name}`"


def _quote_account(user: str, host: str) -> str:
    for part, what in ((user, "user name"), (host, "host")):
        if not _ACCOUNT_PART.match(part):
            raise ValidationError(f"{what} {part!r} may only use letters, digits, '_', '.', '%', '-'", value=part)
    return f"'{user}'@'{host}'"


def _pg_role(name: str) -> str:
    if not _PG_ROLE.match(name):
        raise ValidationError(f"role name {name!r} may only use letters, digits, '_', '$'", value=name)
    return f'"{name}"'


def _roles(writer: str, operator: str, analyst: str) -> list[tuple[str, str, Mapping[str, Access]]]:
    return [("writer", writer, _WRITER), ("operator", operator, _OPERATOR), ("analyst", analyst, {})]


def _tables() -> list[str]:
    return sorted(t.name for t in schema.Base.metadata.sorted_tables)


def _columns(table: str) -> list[str]:
    return [c.name for c in schema.Base.metadata.tables[table].columns]


def grant_statements(
    database: str,
    *,
    dialect: str = "mysql",
    writer: str = "modeltrail_writer",
    operator: str = "modeltrail_operator",
    analyst: str = "modeltrail_analyst",
    host: str = "%",
) -> list[str]:
    """The statements, in order, for ``dialect`` (``mysql`` or ``postgresql``; SQLite has no users).

    MySQL: users must exist (``CREATE USER ... IDENTIFIED BY ...`` is the DBA's, with the password).
    PostgreSQL: the roles are created ``LOGIN`` without a password (``ALTER ROLE ... PASSWORD`` is the DBA's).
    """
    if dialect == "sqlite":
        raise ConfigurationError(
            "SQLite has no users or privileges: whoever can write the file can change the ledger. "
            "Use MariaDB/MySQL or PostgreSQL for separate roles, or protect the file with OS permissions",
            value=database,
        )
    if dialect == "postgresql":
        return _postgresql(database, writer=writer, operator=operator, analyst=analyst)
    if dialect != "mysql":
        raise ConfigurationError(f"no grants for the {dialect!r} backend", value=dialect)
    return _mysql(database, writer=writer, operator=operator, analyst=analyst, host=host)


def _mysql(database: str, *, writer: str, operator: str, analyst: str, host: str) -> list[str]:
    db = _quote_ident(database, "database name")
    out: list[str] = []
    for role, user, rights in _roles(writer, operator, analyst):
        account = _quote_account(user, host)
        out.append(f"-- {role}")
        out.append(f"GRANT SELECT ON {db}.`{schema.VERSION_TABLE}` TO {account};")
        for table in _tables():
            access = rights.get(table)
            privileges = ["SELECT"]
            if access is not None and access.insert:
                privileges.append("INSERT")
            columns = list(access.update) if access is not None else []
            if access is not None and table in _MYSQL_UPSERTED:
                columns = [c for c in _columns(table) if c != "id"]
            if columns:
                privileges.append(f"UPDATE ({', '.join(f'`{c}`' for c in columns)})")
            if access is not None and access.delete:
                privileges.append("DELETE")
            out.append(f"GRANT {', '.join(privileges)} ON {db}.`{table}` TO {account};")
    users = ", ".join(f"'{u}'" for u in (writer, operator, analyst))
    out.append("-- guards: what no GRANT can say (see modeltrail/_grants.py)")
    for table, (mutable, condition, message) in _GUARDS.items():
        name = f"{db}.`modeltrail_guard_{table}`"
        allowed = _allowed(table, mutable, condition, lambda c: f"NEW.`{c}` <=> OLD.`{c}`")
        out.append(f"DROP TRIGGER IF EXISTS {name};")
        out.append(
            f"CREATE TRIGGER {name} BEFORE UPDATE ON {db}.`{table}` FOR EACH ROW\nBEGIN\n"
            f"  IF SUBSTRING_INDEX(USER(), '@', 1) IN ({users}) AND NOT ({allowed}) THEN\n"
            f"    SIGNAL SQLSTATE '42000' SET MYSQL_ERRNO = 1142,\n"
            f"      MESSAGE_TEXT = 'UPDATE denied by modeltrail on {table}: {message}';\n"
            "  END IF;\nEND;"
        )
    out.append("-- audit events carry the real database user and the server's time, whoever inserts them")
    out.append(f"DROP TRIGGER IF EXISTS {db}.`modeltrail_audit_stamp`;")
    out.append(
        f"CREATE TRIGGER {db}.`modeltrail_audit_stamp` BEFORE INSERT ON {db}.`audit_events` FOR EACH ROW "
        "SET NEW.`db_user` = SUBSTRING_INDEX(USER(), '@', 1), NEW.`at` = UTC_TIMESTAMP(6);"
    )
    return out


def _allowed(table: str, mutable: Iterable[str], condition: Callable[[Same], str], same: Same) -> str:
    """The SQL condition under which an UPDATE of ``table`` is the role's business (never NULL)."""
    keep = [same(c) for c in _columns(table) if c not in set(mutable)]
    row = condition(same)
    return " AND ".join([*keep, *([f"({row})"] if row else [])]) or "TRUE"


def _postgresql(database: str, *, writer: str, operator: str, analyst: str) -> list[str]:
    _quote_ident(database, "database name")
    out = [f"-- run connected to the database {database!r}; roles are LOGIN without a password (set one)"]
    for role, user, rights in _roles(writer, operator, analyst):
        quoted = _pg_role(user)
        out.append(f"-- {role}")
        out.append(f"DO $$ BEGIN CREATE ROLE {quoted} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;")
        out.append(f'GRANT CONNECT ON DATABASE "{database}" TO {quoted};')
        out.append(f"GRANT USAGE ON SCHEMA public TO {quoted};")
        out.append(f'GRANT SELECT ON TABLE "{schema.VERSION_TABLE}" TO {quoted};')
        for table in _tables():
            access = rights.get(table)
            privileges = ["SELECT"] + (["INSERT"] if access is not None and access.insert else [])
            privileges += ["DELETE"] if access is not None and access.delete else []
            out.append(f'GRANT {", ".join(privileges)} ON TABLE "{table}" TO {quoted};')
            columns = list(access.update) if access is not None else []
            if table in _PG_LOCK.get(role, ()):
                columns.append("id")
            if columns:
                out.append(f'GRANT UPDATE ({", ".join(columns)}) ON TABLE "{table}" TO {quoted};')
            if access is not None and access.insert and "id" in _columns(table) and table != "ingested_batches":
                out.append(f'GRANT USAGE ON SEQUENCE "{table}_id_seq" TO {quoted};')
    users = ", ".join(f"'{u}'" for u in (writer, operator, analyst))
    out.append("-- guards: what no GRANT can say (see modeltrail/_grants.py)")
    for table, (mutable, condition, message) in _GUARDS.items():
        allowed = _allowed(table, mutable, condition, lambda c: f'NEW."{c}"::text IS NOT DISTINCT FROM OLD."{c}"::text')
        function = f"modeltrail_guard_{table}"
        out.append(
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
            f"  IF session_user IN ({users}) AND NOT ({allowed}) THEN\n"
            f"    RAISE EXCEPTION 'permission denied by modeltrail on {table}: {message}' USING ERRCODE = '42501';\n"
            "  END IF;\n  RETURN NEW;\nEND $$;"
        )
        out.append(f'DROP TRIGGER IF EXISTS {function} ON "{table}";')
        out.append(f'CREATE TRIGGER {function} BEFORE UPDATE ON "{table}" FOR EACH ROW EXECUTE FUNCTION {function}();')
    out.append("-- audit events carry the real database user and the server's time, whoever inserts them")
    out.append(
        "CREATE OR REPLACE FUNCTION modeltrail_audit_stamp() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        "  NEW.db_user := session_user;\n  NEW.at := now();\n  RETURN NEW;\nEND $$;"
    )
    out.append('DROP TRIGGER IF EXISTS modeltrail_audit_stamp ON "audit_events";')
    out.append(
        'CREATE TRIGGER modeltrail_audit_stamp BEFORE INSERT ON "audit_events" FOR EACH ROW '
        "EXECUTE FUNCTION modeltrail_audit_stamp();"
    )
    return out


def script(statements: Iterable[str], dialect: str) -> str:
    """The statements as a file the database's own client runs: MySQL's needs a delimiter around trigger bodies."""
    lines: list[str] = []
    for statement in statements:
        if dialect == "mysql" and "\nBEGIN\n" in statement:
            lines += ["DELIMITER //", statement.removesuffix(";") + "//", "DELIMITER ;"]
        else:
            lines.append(statement)
    return "\n".join(lines)
