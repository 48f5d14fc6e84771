"""The versions table's rows, rendered in Python: the one part of a page that grows with the ledger.

A model with thousands of versions makes a table of thousands of rows; through the template
engine each cell costs an attribute lookup, a filter call and an escape, which made the rows
two thirds of the page's time. Here each row is one f-string: numbers and times are formatted
by the same functions the templates use, and every string that came from the ledger (user,
param keys, environment names) is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from .._records import VersionLine
from .format import MISSING, duration, num, short, sortkey, when


def version_rows_html(model_id: int, rows: Sequence[VersionLine], key_metrics: Sequence[str]) -> Markup:
    """The ``<tr>`` elements of a model's versions table (columns as in ``model.html``'s header)."""
    out = []
    for v in rows:
        metrics = "".join(f"<td>{num(v.metrics[k]) if k in v.metrics else MISSING}</td>" for k in key_metrics)
        serving = "".join(f'<span class="badge badge-env">{escape(env)}</span>' for env in v.environments)
        changed = escape(", ".join(v.changed_params)) if v.changed_params else MISSING
        parent = (
            f'<a href="/models/{model_id}/compare?a={v.parent_number}&amp;b={v.number}">vs v{v.parent_number}</a>'
            if v.parent_number
            else ""
        )
        out.append(
            f'<tr><td><a href="/trainings/{v.training_id}">v{v.number}</a></td>'
            f"<td>{when(v.created_at)}</td>"
            f'<td data-sort="{sortkey(v.duration_s)}">{duration(v.duration_s)}</td>'
            f"<td>{escape(v.run_by) if v.run_by else MISSING}</td>"
            f'<td class="mono">{escape(short(v.git_commit))}</td>'
            f"<td>{changed}</td><td>{serving}</td>{metrics}<td>{parent}</td></tr>\n"
        )
    return Markup("".join(out))
