"""Rankings and comparisons: leaderboards, the best version, one metric across versions, version diffs.

Which way is better for a metric is decided here, once (:func:`resolve_mode`: the caller's mode, else
the goal declared for the model, else :func:`infer_goal` from the name, else a ValidationError). Leaderboards and
comparisons read ``metric_summaries`` only, never the metric history; rankings by evaluation read
each version's latest evaluation on a dataset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from .. import _schema as schema
from .._errors import NotFoundError, ValidationError
from .._records import (
    Comparison,
    EvaluationDelta,
    LeaderboardEntry,
    MetricDelta,
    MetricGoalRecord,
    ProductionComparison,
    RecordList,
    VersionMetric,
)
from .._rows import resolve_model
from .._values import check_dataset_name, check_limit, check_metric_key, decode_float, param_diff
from .deployments import active_environments, production_metrics
from .evaluations import latest_evaluations
from .queries import dataset_record, metric_key_id, params_of, summaries, summary_record, versions

MODES = ("max", "min")
#: The mode a comparison shows for a metric whose better direction nobody knows.
UNKNOWN = "unknown"
RANK_BY = ("best", "last")
#: The largest LIMIT the databases take (a signed 64-bit integer).
LIMIT_MAX = 2**63 - 1


#: Whole name segments that say lower is better (losses, errors, distances, times) ...
MIN_WORDS = frozenset((
    "loss", "losses", "logloss", "nll", "err", "error", "errors", "mae", "mse", "rmse", "msle", "rmsle", "mape",
    "smape", "wape", "perplexity", "ppl", "wer", "cer", "ter", "latency", "regret", "brier", "fpr", "fnr", "fdr",
    "eer", "far", "frr", "distance", "dist", "cost", "duration", "seconds", "time",
))  # fmt: skip
#: ... and higher is better (accuracies, areas under curves, overlaps, ranking quality, rewards).
MAX_WORDS = frozenset((
    "acc", "accuracy", "auc", "roc", "auroc", "auprc", "ap", "map", "f1", "f2", "fbeta", "fscore", "r2", "precision",
    "recall", "sensitivity", "specificity", "tpr", "tnr", "iou", "miou", "dice", "bleu", "rouge", "meteor", "ndcg",
    "mrr", "hits", "hitrate", "kappa", "mcc", "score", "reward", "psnr", "ssim",
))  # fmt: skip
_SEGMENTS = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


# ----------------------------------------------------------------- checks
def infer_goal(key: str) -> str | None:
    """The direction the name alone makes clear: "min" (``val_loss``), "max" (``val_auc``), or None.

    Whole segments only (split at ``_ . - /`` and camelCase), so ``lossless_ratio`` says nothing,
    and a name with words of both kinds (``auc_loss``) is ambiguous: None.
    """
    words = set(_SEGMENTS.split(_CAMEL.sub(r"\1_\2", key).lower()))
    lower, higher = bool(words & MIN_WORDS), bool(words & MAX_WORDS)
    if lower == higher:
        return None
    return "min" if lower else "max"


def declared_goals(s: Session, model_id: int, metrics: Iterable[str] | None = None) -> dict[str, str]:
    """Goals declared with ``set_metric_goal`` for the model (only for ``metrics``, when given)."""
    g = schema.MetricGoalRow
    query = select(g.metric, g.goal).where(g.model_id == model_id)
    if metrics is not None:
        query = query.where(g.metric.in_(list(metrics)))
    return {metric: goal for metric, goal in s.execute(query)}


def metric_goals(s: Session, model_id: int, metrics: Iterable[str]) -> dict[str, str | None]:
    """Each metric's goal: declared for the model, else inferred from its name, else None (unknown)."""
    metrics = list(metrics)
    declared = declared_goals(s, model_id, metrics) if metrics else {}
    return {m: declared.get(m) or infer_goal(m) for m in metrics}


def goal_records(s: Session, model_ref: Any) -> RecordList[MetricGoalRecord]:
    """The goals declared for a model, by metric name."""
    model = resolve_model(s, model_ref)
    g = schema.MetricGoalRow
    rows = s.execute(select(g).where(g.model_id == model.id).order_by(g.metric)).scalars()
    return RecordList(
        MetricGoalRecord(model=model.name, metric=r.metric, goal=r.goal, set_at=r.set_at, set_by=r.set_by) for r in rows
    )


def unknown_goal(model: str, metric: str) -> ValidationError:
    return ValidationError(
        f"which way is better for metric {metric!r} is not clear from its name: pass mode='max' or mode='min', "
        f"or declare it once with set_metric_goal({model!r}, {metric!r}, 'max' or 'min')",
        value=metric,
    )


def resolve_mode(s: Session, model: schema.ModelRow, metric: str, mode: str | None) -> str:
    """``mode`` when given; else the model's declared goal for ``metric``; else the name's; else ValidationError."""
    if mode is not None:
        return check_mode(mode)
    goal = metric_goals(s, model.id, [metric])[metric]
    if goal is None:
        if metric_key_id(s, metric) is None:
            return "max"  # nothing ever logged it: no ranking to get wrong, and "not found" says more
        raise unknown_goal(model.name, metric)
    return goal


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValidationError(f"mode must be 'max' or 'min', got {mode!r}", value=mode)
    return str(mode)


def check_rank_by(by: Any) -> str:
    if by not in RANK_BY:
        raise ValidationError(f"by must be 'best' or 'last', got {by!r}", value=by)
    return str(by)


# ------------------------------------------------------------ comparisons
#: Two values this close (relative) are the same value: float noise (0.1 + 0.2 - 0.3) is no change.
SAME_REL_TOL = 1e-9


def change(a: float, b: float) -> float:
    """``b - a``, exactly 0.0 when the two are equal within :data:`SAME_REL_TOL` (they print the same)."""
    return 0.0 if math.isclose(a, b, rel_tol=SAME_REL_TOL) else b - a


def compare(s: Session, model_ref: Any, a: int, b: int, *, modes: Mapping[str, str] | None = None) -> Comparison:
    """What changed from version ``a`` to ``b``: params, shared metrics (final and best), dataset, duration, code.

    Five short indexed queries whatever the history's size: the two versions with their trainings,
    their params, their metric summaries, their datasets.
    """
    model = resolve_model(s, model_ref)
    for number in (a, b):
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValidationError(f"a version number is an integer, got {number!r}", value=number)
    v, t = schema.VersionRow, schema.TrainingRow
    rows = {
        row.number: row
        for row in s.execute(
            select(v.number, v.training_id, t.duration_s, t.git_commit, t.dataset_id)
            .join(t, t.id == v.training_id)
            .where(v.model_id == model.id, v.number.in_([n for n in (a, b) if -(2**31) <= n < 2**31]))
        )
    }
    for number in (a, b):
        if number not in rows:
            raise NotFoundError(f"model {model.name!r} has no version {number}", value=number)
    ra, rb = rows[a], rows[b]
    ids = [ra.training_id, rb.training_id]
    params = params_of(s, ids)
    metrics = summaries(s, ids)
    dataset_ids = {r.dataset_id for r in (ra, rb) if r.dataset_id is not None}
    datasets = {
        d.id: dataset_record(d)
        for d in (
            s.execute(select(schema.DatasetRow).where(schema.DatasetRow.id.in_(dataset_ids))).scalars()
            if dataset_ids
            else []
        )
    }
    da, db = datasets.get(ra.dataset_id), datasets.get(rb.dataset_id)
    metrics_a, metrics_b = metrics[ra.training_id], metrics[rb.training_id]
    modes = dict(modes or {})
    for mode in modes.values():
        check_mode(mode)
    modes = _known(metric_goals(s, model.id, metrics_a.keys() & metrics_b.keys()), modes)
    deltas: RecordList[MetricDelta] = RecordList()
    for key in sorted(metrics_a.keys() & metrics_b.keys()):
        ma, mb = metrics_a[key], metrics_b[key]
        mode = modes.get(key, UNKNOWN)
        best_a = ma.max if mode == "max" else ma.min if mode == "min" else None
        best_b = mb.max if mode == "max" else mb.min if mode == "min" else None
        deltas.append(
            MetricDelta(
                key=key,
                mode=mode,
                last_a=ma.last,
                last_b=mb.last,
                last_delta=change(ma.last, mb.last),
                best_a=best_a,
                best_b=best_b,
                best_delta=change(best_a, best_b) if best_a is not None and best_b is not None else None,
            )
        )
    duration_a, duration_b = ra.duration_s, rb.duration_s
    return Comparison(
        model=model.name,
        a=a,
        b=b,
        training_a=ra.training_id,
        training_b=rb.training_id,
        params=param_diff(params[ra.training_id], params[rb.training_id]),
        metrics=deltas,
        metrics_only_a=sorted(metrics_a.keys() - metrics_b.keys()),
        metrics_only_b=sorted(metrics_b.keys() - metrics_a.keys()),
        dataset_a=da,
        dataset_b=db,
        dataset_changed=ra.dataset_id != rb.dataset_id,
        duration_a=duration_a,
        duration_b=duration_b,
        duration_delta=duration_b - duration_a if duration_a is not None and duration_b is not None else None,
        commit_a=ra.git_commit,
        commit_b=rb.git_commit,
        code_changed=ra.git_commit != rb.git_commit,
        evaluations=_evaluation_deltas(s, model, a, b, modes),
    )


# ------------------------------------------------------------ leaderboards


def _columns(mode: str, by: str) -> tuple[Any, ...]:
    """What a leaderboard row holds: number, training_id, version id, then the ranked (value, kind, step)
    and the other figure's (value, kind): the last value when ranking by best, the best when ranking by last.
    """
    v, ms = schema.VersionRow, schema.MetricSummaryRow
    best = (ms.max_value, ms.max_kind, ms.max_step) if mode == "max" else (ms.min_value, ms.min_kind, ms.min_step)
    last = (ms.last_value, ms.last_kind, ms.last_step)
    ranked, other = (last, best) if by == "last" else (best, last)
    return (v.number, v.training_id, v.id, *ranked, *other[:2])


def leaderboard_query(model_id: int, metric: str, *, mode: str, by: str) -> Select:
    """One model's versions ranked by one metric's summary, NaN (NULL) last on every backend.

    Columns: see :func:`_columns`. Only what a leaderboard shows is fetched: with 1,000 versions the
    driver's row decoding is most of the cost. Versions are found by (model_id, number), summaries by
    (training_id, key_id). Ties go to the lower version number.
    """
    v, ms, mk = schema.VersionRow, schema.MetricSummaryRow, schema.MetricKeyRow
    columns = _columns(mode, by)
    column = columns[3]
    return (
        select(*columns)
        .join(ms, ms.training_id == v.training_id)
        .join(mk, and_(mk.id == ms.key_id, mk.name == metric))
        .where(v.model_id == model_id)
        .order_by(column.is_(None), column.desc() if mode == "max" else column.asc(), v.number)
    )


def leaderboard_top(s: Session, model_id: int, metric: str, *, mode: str, by: str, limit: int) -> list[Any]:
    """The first ``limit`` rows of :func:`leaderboard_query`, the same rows in the same order, read by index.

    ``metric_summaries`` carries each version's model, and (model, key, value) indexes hold a model's
    versions in value order: the best ``limit + 1`` are a few index entries, whatever the model's size.
    The index does not know version numbers, the tiebreak, so when equal values straddle the cut all
    the rows of that value are read (a second lookup of one value) and ordered by number here. NaN
    (NULL) rows come after, by number, read only when fewer than ``limit`` versions have a value.
    """
    key_id = metric_key_id(s, metric)
    if key_id is None:
        return []
    v, ms = schema.VersionRow, schema.MetricSummaryRow
    columns = _columns(mode, by)
    column = columns[3]
    query = select(*columns).select_from(ms).join(v, v.training_id == ms.training_id)
    query = query.where(ms.key_id == key_id, ms.model_id == model_id)
    conn = s.connection()  # Core rows, as for the whole leaderboard
    rows = list(
        conn.execute(
            query.where(column.is_not(None))
            .order_by(column.desc() if mode == "max" else column.asc())
            .limit(min(limit, LIMIT_MAX - 1) + 1)  # one more: does a tie straddle the cut?
        ).all()
    )
    if len(rows) > limit and rows[limit][3] == rows[limit - 1][3]:
        cut = rows[limit - 1][3]
        rows = [r for r in rows if r[3] != cut] + list(conn.execute(query.where(column == cut)).all())
    # The stored values order as the SQL does (+/-inf are +/-DBL_MAX there, tied with them; -0.0 is 0.0).
    sign = -1.0 if mode == "max" else 1.0
    rows.sort(key=lambda r: (sign * r[3], r[0]))
    del rows[limit:]
    if len(rows) < limit:
        rows += conn.execute(query.where(column.is_(None)).order_by(v.number).limit(limit - len(rows))).all()
    return rows


def leaderboard(
    s: Session,
    model_ref: Any,
    metric: str,
    *,
    mode: str | None = None,
    by: str = "best",
    limit: int | None = None,
    dataset: str | None = None,
) -> RecordList[LeaderboardEntry]:
    """Versions ranked by ``metric``: by each training's best value over its whole history, or its last one.

    With ``dataset``, by ``metric`` of each version's latest evaluation on that dataset instead
    (``by`` does not apply: an evaluation has one value). Equal values share a rank. Versions
    that never logged (or were never evaluated with) ``metric`` are left out. Without ``mode``, the
    model's declared goal for ``metric`` decides, else its name (``val_loss``: min); else ValidationError.
    """
    by = check_rank_by(by)
    if mode is not None:
        check_mode(mode)
    if limit is not None:
        check_limit(limit)
    check_metric_key(metric)
    model = resolve_model(s, model_ref)
    mode = resolve_mode(s, model, metric, mode)
    if dataset is not None:
        return _evaluation_leaderboard(s, model, metric, check_dataset_name(dataset), mode=mode, limit=limit)
    if limit is None:
        rows = s.connection().execute(leaderboard_query(model.id, metric, mode=mode, by=by)).all()
    else:
        rows = leaderboard_top(s, model.id, metric, mode=mode, by=by, limit=limit)
    serving = active_environments(s, model.id)
    out: RecordList[LeaderboardEntry] = RecordList()
    rank, previous = 0, None
    name = model.name
    for i, (number, training_id, version_id, value, kind, step, other, other_kind) in enumerate(rows):
        ranked = decode_float(value, kind)
        if by == "best":
            best = None if step is None else ranked
            last = decode_float(other, other_kind)
        else:
            best = None if other is None else decode_float(other, other_kind)
            last = ranked
        if previous is None or ranked != previous:
            rank = i + 1
        previous = ranked
        out.append(
            LeaderboardEntry(
                rank=rank,
                model=name,
                version=number,
                training_id=training_id,
                metric=metric,
                value=ranked,
                step=step,
                last=last,
                best=best,
                environments=serving.get(version_id, []),
            )
        )
    return out


def metric_by_version(s: Session, model_ref: Any, metric: str, *, mode: str | None = None) -> RecordList[VersionMetric]:
    """One metric's final and best value in every version that logged it, by version number."""
    model = resolve_model(s, model_ref)
    mode = resolve_mode(s, model, metric, mode)
    key_id = metric_key_id(s, metric)
    if key_id is None:
        return RecordList()
    serving = active_environments(s, model.id)
    v, ms = schema.VersionRow, schema.MetricSummaryRow
    query = (
        select(v.number, v.training_id, v.id, *(getattr(ms, c) for c in schema.SUMMARY_VALUE_COLUMNS))
        .join(ms, and_(ms.training_id == v.training_id, ms.key_id == key_id))
        .where(v.model_id == model.id)
        .order_by(v.number)
    )
    out: RecordList[VersionMetric] = RecordList()
    for row in s.execute(query):
        summary = summary_record(metric, row)
        best, best_step = (summary.max, summary.max_step) if mode == "max" else (summary.min, summary.min_step)
        out.append(
            VersionMetric(
                model=model.name,
                version=row.number,
                training_id=row.training_id,
                metric=metric,
                mode=mode,
                count=summary.count,
                last=summary.last,
                last_step=summary.last_step,
                best=best,
                best_step=best_step,
                environments=serving.get(row.id, []),
            )
        )
    return out


def _evaluation_leaderboard(
    s: Session, model: schema.ModelRow, metric: str, dataset: str, *, mode: str, limit: int | None
) -> RecordList[LeaderboardEntry]:
    latest = latest_evaluations(s, model)
    scored = [
        (record, record.metrics[metric])
        for (_, name), record in latest.items()
        if name == dataset and metric in record.metrics
    ]
    sign = -1.0 if mode == "max" else 1.0
    scored.sort(key=lambda pair: (math.isnan(pair[1]), sign * pair[1] if not math.isnan(pair[1]) else 0.0,
                                  pair[0].version))  # fmt: skip
    if limit is not None:
        scored = scored[:limit]
    training_of = {r.number: (r.training_id, r.id) for r in versions(s, model.id)}
    serving = active_environments(s, model.id)
    out: RecordList[LeaderboardEntry] = RecordList()
    rank, previous = 0, None
    for i, (record, value) in enumerate(scored):
        if previous is None or not (value == previous or (math.isnan(value) and math.isnan(previous))):
            rank = i + 1
        previous = value
        training_id, version_id = training_of[record.version]
        out.append(
            LeaderboardEntry(
                rank=rank,
                model=model.name,
                version=record.version,
                training_id=training_id,
                metric=metric,
                value=value,
                step=None,
                last=value,
                best=value,
                environments=serving.get(version_id, []),
                dataset=dataset,
            )
        )
    return out


def _known(goals: Mapping[str, str | None], modes: Mapping[str, str]) -> dict[str, str]:
    """The goals that are known, overridden by the caller's ``modes``."""
    return {**{k: g for k, g in goals.items() if g is not None}, **modes}


def _evaluation_deltas(
    s: Session, model: schema.ModelRow, a: int, b: int, modes: Mapping[str, str]
) -> RecordList[EvaluationDelta]:
    latest = latest_evaluations(s, model, [a, b])
    out: RecordList[EvaluationDelta] = RecordList()
    for dataset in sorted(
        {name for number, name in latest if number == a} & {name for number, name in latest if number == b}
    ):
        ea, eb = latest[(a, dataset)], latest[(b, dataset)]
        modes = _known(metric_goals(s, model.id, ea.metrics.keys() & eb.metrics.keys()), modes)
        for key in sorted(ea.metrics.keys() & eb.metrics.keys()):
            va, vb = ea.metrics[key], eb.metrics[key]
            out.append(
                EvaluationDelta(
                    dataset=dataset, key=key, mode=modes.get(key, UNKNOWN), value_a=va, value_b=vb,
                    delta=change(va, vb),
                )
            )  # fmt: skip
    return out


# ------------------------------------------------------------ production
def compare_production(
    s: Session,
    model_ref: Any,
    environment: str,
    metric: str,
    *,
    training_metric: str | None = None,
    mode: str | None = None,
) -> RecordList[ProductionComparison]:
    """Each production measurement of ``metric`` beside the serving version's training value of it."""
    model = resolve_model(s, model_ref)
    train_key = training_metric or metric
    mode = resolve_mode(s, model, train_key, mode)
    points = production_metrics(s, model.id, environment=environment, metric=metric)
    training_of = {r.number: r.training_id for r in versions(s, model.id)}
    found = summaries(s, sorted({training_of[p.version] for p in points}))
    out: RecordList[ProductionComparison] = RecordList()
    for p in points:
        summary = found[training_of[p.version]].get(train_key)
        last = summary.last if summary is not None else None
        best = (summary.max if mode == "max" else summary.min) if summary is not None else None
        out.append(
            ProductionComparison(
                deployment_id=p.deployment_id,
                environment=p.environment,
                version=p.version,
                metric=metric,
                measured_at=p.measured_at,
                value=p.value,
                training_metric=train_key,
                training_last=last,
                training_best=best,
                delta_last=change(last, p.value) if last is not None else None,
            )
        )
    return out
