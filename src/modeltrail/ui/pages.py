"""The HTML pages: server-rendered from the Tracker's answers, charts drawn by the shipped script.

Pages name a model by its id (``/models/3``, what links use: names may hold any character, ``/``
included) or by its name (``/models/churn-rf``); a name made only of digits is read as an id first.
Empty form fields mean "any", so a filter form can be submitted as it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from .._errors import ValidationError
from .api import Ledger, RowId, by_ref, parse_versions
from .artifacts import download_url
from .tables import version_rows_html

router = APIRouter(include_in_schema=False)

#: Entries of the leaderboard on a model page; the API gives the whole ranking.
LEADERBOARD_SIZE = 10
#: Trainings on a model page (the latest); the trainings page searches them all.
MODEL_TRAININGS = 100
TRAININGS_LIMIT_MAX = 1000
AUDIT_LIMIT_MAX = 1000
Text = Annotated[str | None, Query()]


def blank(value: str | None) -> str | None:
    """An empty or all-space form field as None."""
    return value.strip() or None if value is not None else None


def render(request: Request, template: str, nav: str, context: Mapping[str, Any]) -> Response:
    templates = request.app.state.templates
    return templates.TemplateResponse(request, template, {**context, "nav": nav})


@router.get("/", response_class=HTMLResponse)
def models_page(
    request: Request,
    tracker: Ledger,
    name: Text = None,
    framework: Text = None,
    model_type: Text = None,
    tag: Text = None,
) -> Response:
    """The model list, filtered by name, framework, type and tag."""
    filters = {"name": blank(name), "framework": blank(framework), "model_type": blank(model_type), "tag": blank(tag)}
    rows = tracker.model_summaries(
        framework=filters["framework"], model_type=filters["model_type"], tag=filters["tag"], name=filters["name"]
    )
    options = tracker.filter_options()
    environments = sorted({env for row in rows for env in row.environments})
    return render(
        request,
        "models.html",
        "models",
        {"models": rows, "filters": filters, "options": options, "environments": environments},
    )


def _timelines(deployments: list[Any]) -> dict[str, list[Any]]:
    """Deployments per environment, newest first: how a timeline reads."""
    out: dict[str, list[Any]] = {}
    for d in deployments:
        out.setdefault(d.environment, []).append(d)
    return {env: sorted(rows, key=lambda d: d.id, reverse=True) for env, rows in sorted(out.items())}


@router.get("/models/{model:path}/compare", response_class=HTMLResponse)
def compare_page(request: Request, tracker: Ledger, model: str, a: int | None = None, b: int | None = None) -> Response:
    """Two versions side by side; by default the latest against its parent."""
    record = by_ref(model, tracker.model)
    comparison = tracker.compare_latest(record.id, a, b)
    return render(request, "compare.html", "models", {"model": record, "c": comparison})


@router.get("/models/{model:path}/charts", response_class=HTMLResponse)
def charts_page(
    request: Request,
    tracker: Ledger,
    model: str,
    metric: Text = None,
    v: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """One metric across every version, and several versions' step curves on one chart."""
    versions = parse_versions([x for x in v or [] if x.strip()])
    record = by_ref(model, tracker.model)
    metrics = tracker.model_metrics(record.id)
    metric = blank(metric) or (metrics[0].name if metrics else None)
    mode = tracker.metric_goal(record.id, metric) if metric else None
    # With no known direction there is no "best": the chart shows final values only.
    across = tracker.metric_by_version(record.id, metric, mode=mode or "max") if metric else []
    curves = tracker.metric_series(record.id, metric, versions=versions) if metric else []
    series: list[dict[str, Any]] = [{"name": "final", "points": [[m.version, m.last] for m in across]}]
    if mode is not None:
        series.append({"name": f"best ({mode})", "points": [[m.version, m.best] for m in across], "dashed": True})
    across_chart = {"x_label": "version", "y_label": metric, "series": series}
    curves_chart = {
        "x_label": "step",
        "y_label": metric,
        "series": [{"name": f"v{c.version}", "points": c.points} for c in curves],
    }
    return render(
        request,
        "charts.html",
        "models",
        {
            "model": record,
            "metrics": metrics,
            "metric": metric,
            "mode": mode,
            "across": across,
            "curves": curves,
            "across_chart": across_chart,
            "curves_chart": curves_chart,
            "versions_text": ",".join(str(c.version) for c in curves),
        },
    )


# After /compare and /charts: a name may hold "/", and the first matching route answers.
@router.get("/models/{model:path}", response_class=HTMLResponse)
def model_page(
    request: Request, tracker: Ledger, model: str, metric: Text = None, mode: Text = None, by: Text = None
) -> Response:
    """A model: serving now, versions table, leaderboard, comparison form and deployment timelines."""
    metric, by = blank(metric), blank(by) or "best"
    page = by_ref(model, tracker.model_page)
    model_id = page.model.id
    metric = metric or (page.key_metrics[0] if page.key_metrics else None)
    # Which way is better: the form's choice, else the declared goal, else the name's; else the page asks.
    mode = blank(mode) or (tracker.metric_goal(model_id, metric) if metric else None)
    board = tracker.leaderboard(model_id, metric, mode=mode, by=by, limit=LEADERBOARD_SIZE) if metric and mode else []
    numbers = [v.number for v in page.versions]
    compare_b = numbers[-1] if numbers else None
    compare_a = (page.versions[-1].parent_number or numbers[-2]) if len(numbers) > 1 else None
    return render(
        request,
        "model.html",
        "models",
        {
            "page": page,
            "model": page.model,
            "metric": metric,
            "mode": mode,
            "by": by,
            "board": board,
            "timelines": _timelines(page.deployments),
            "compare_a": compare_a,
            "compare_b": compare_b,
            "version_rows": version_rows_html(page.model.id, page.versions, page.key_metrics),
            "trainings": tracker.trainings(model_id, order_by="started_at desc, id desc", limit=MODEL_TRAININGS),
            "trainings_limit": MODEL_TRAININGS,
            "registry": tracker.registry_view(model_id),
            "artifact_url": download_url,
        },
    )


@router.get("/trainings", response_class=HTMLResponse)
def trainings_page(
    request: Request,
    tracker: Ledger,
    model: Text = None,
    status: Text = None,
    where: Text = None,
    order_by: Text = None,
    limit: Annotated[int, Query(ge=1, le=TRAININGS_LIMIT_MAX)] = 100,
) -> Response:
    """Every training, of one model or all, filtered like MLflow's search_runs; a bad filter is said on the page."""
    filters = {"model": blank(model), "status": blank(status), "where": blank(where), "order_by": blank(order_by)}
    error, rows = None, []
    try:
        rows = list(
            tracker.trainings(
                filters["model"], status=filters["status"], where=filters["where"], order_by=filters["order_by"],
                limit=limit,
            )
        )  # fmt: skip
    except ValidationError as e:
        error = str(e)
    context = {"rows": rows, "filters": filters, "limit": limit, "limit_max": TRAININGS_LIMIT_MAX, "error": error}
    response = render(request, "trainings.html", "trainings", context)
    if error is not None:
        response.status_code = 400
    return response


@router.get("/trainings/{training_id:int}", response_class=HTMLResponse)
def training_page(request: Request, tracker: Ledger, training_id: RowId) -> Response:
    """A training: params, context, dataset, artifact, stage durations, and a chart of every metric."""
    record = tracker.get_training(training_id)
    model = tracker.model(record.model)
    series = tracker.training_series(training_id)
    charts = [
        (item, {"x_label": "step", "y_label": item.metric, "series": [{"name": item.metric, "points": item.points}]})
        for item in series
    ]
    longest = max((stage.duration_s for stage in record.stages), default=0.0) or 1.0
    return render(
        request,
        "training.html",
        "models",
        {"t": record, "model": model, "charts": charts, "longest_stage": longest},
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    tracker: Ledger,
    action: Text = None,
    entity: Text = None,
    entity_id: Text = None,
    since: Text = None,
    limit: Annotated[int, Query(ge=1, le=AUDIT_LIMIT_MAX)] = 100,
) -> Response:
    """The audit log, newest first, filtered by action (``prefix*``), entity, entity id and day."""
    filters = {"action": blank(action), "entity": blank(entity), "entity_id": blank(entity_id), "since": blank(since)}
    day = None
    if filters["since"] is not None:
        try:
            day = dt.date.fromisoformat(filters["since"])
        except ValueError:
            raise ValidationError(f"since is a day (YYYY-MM-DD), got {filters['since']!r}", value=since) from None
    events = tracker.audit(
        action=filters["action"], entity=filters["entity"], entity_id=filters["entity_id"], since=day, limit=limit
    )
    options = tracker.audit_options()
    return render(
        request, "audit.html", "audit", {"events": events, "filters": filters, "limit": limit, "options": options}
    )


@router.get("/api", response_class=HTMLResponse)
def api_page(request: Request) -> Response:
    """The JSON API's routes and parameters, read from the OpenAPI document, readable offline."""
    spec = request.app.openapi()
    routes = []
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            routes.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "params": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "description": p.get("description", ""),
                        }
                        for p in operation.get("parameters", [])
                    ],
                }
            )
    return render(request, "api.html", "api", {"routes": routes, "description": spec["info"].get("description", "")})
