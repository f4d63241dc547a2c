"""The month in the Airflow UI: a plugin page of GREEN-API usage per instance.

Installed with the provider (the ``airflow.plugins`` entry point), on unless ``[greenapi] quota_view = False``.
Airflow 3.1+ mounts the plugin's FastAPI app (``fastapi_apps``) on its API server at ``/greenapi`` and shows
the page inside its own UI through an external view (``external_views`` with a ``url_route``: the menu's
"GREEN-API quota", at ``/plugin/greenapi-quota``); both exist on every line from 3.1 to 3.4. The page is
server-rendered HTML with inline SVG (no script, no build step).

Read-only and closed: a viewer must be allowed to read connections (Airflow's auth manager); the warehouse
is one of the SQL connections of a supported engine, chosen from a list, never a connection string or SQL;
the report runs fixed SELECTs (usage_report.py); of a GREEN-API connection only its instance id and
``monthly_quota`` are read, never the token.
"""

from __future__ import annotations

import calendar
import html

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Query
from fastapi.responses import HTMLResponse

from airflow_provider_greenapi._compat import connection_reader
from airflow_provider_greenapi.usage_report import InstanceUsage, greenapi_quotas, month_usage, parse_month
from airflow_provider_greenapi.warehouse import Dialect

URL_PREFIX = "/greenapi"
PAGE = "/quota"

app = FastAPI(title="GREEN-API quota", docs_url=None, redoc_url=None, openapi_url=None)


def _connections() -> tuple[list[str], list[str]]:
    """(warehouse connection ids of supported engines, GREEN-API connection ids), from Airflow's metadata DB;
    only ids and types are read here."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    engine_types = {t for d in Dialect for t in d.engine.conn_types}
    with create_session() as session:
        pairs = session.query(Connection.conn_id, Connection.conn_type).order_by(Connection.conn_id).all()
    warehouses = [c for c, t in pairs if t in engine_types]
    return warehouses, [c for c, t in pairs if t == "greenapi"]


@app.get(PAGE, response_class=HTMLResponse, dependencies=[Depends(connection_reader())])
def quota_page(warehouse: str | None = Query(None), month: str | None = Query(None)) -> HTMLResponse:
    warehouses, greenapi = _connections()
    error, reports, connection_errors = None, [], []
    chosen = warehouse if warehouse in warehouses else (warehouses[0] if warehouses else None)
    try:
        shown_month = parse_month(month)
    except ValueError as bad:
        error, shown_month = str(bad), parse_month(None)
    if warehouse and warehouse not in warehouses:
        error = f"{warehouse!r} is not a warehouse connection of a supported engine."
    elif chosen is not None and error is None:
        connections = greenapi_quotas(greenapi)  # one unreadable connection is a line, not a blank page
        connection_errors = connections.errors
        try:
            reports = month_usage(chosen, shown_month, connections)
        except Exception as failed:  # shown to the viewer: the engine's message, never a connection's secret
            error = f"Could not read the usage of {chosen!r}: {type(failed).__name__}: {failed}"
    return HTMLResponse(_render(warehouses, chosen, shown_month, reports, error, connection_errors),
                        headers={"Cache-Control": "no-store"})


def _render(warehouses: list[str], chosen: str | None, month: str, reports: list[InstanceUsage],
            error: str | None, connection_errors: list[str] | None = None) -> str:
    e = html.escape
    options = "".join(f'<option value="{e(w)}"{" selected" if w == chosen else ""}>{e(w)}</option>'
                      for w in warehouses)
    body = [f'<form method="get" action="{URL_PREFIX}{PAGE}"><label>Warehouse connection '
            f'<select name="warehouse">{options}</select></label> '
            f'<label>Month <input name="month" value="{e(month)}" size="8" pattern="[0-9]{{4}}-[0-9]{{2}}"></label> '
            '<button type="submit">Show</button></form>']
    body.extend(f'<p class="error connection-error" role="alert">{e(line)}</p>' for line in connection_errors or [])
    if error:
        body.append(f'<p class="error" role="alert">{e(error)}</p>')
    elif not warehouses:
        body.append("<p>No warehouse connection of a supported engine (sqlite, postgres, duckdb, mysql, "
                    "snowflake) exists yet.</p>")
    elif not reports:
        body.append(f"<p>No GREEN-API usage recorded in {e(chosen or '')} for {e(month)}.</p>")
    body.extend(_instance(r) for r in reports)
    return _PAGE.format(month=e(month), body="\n".join(body))


def _instance(r: InstanceUsage) -> str:
    e = html.escape
    quota = r.quota or 0
    share = min(1.0, r.calls / quota) if quota else 0.0
    colour = "#25d366" if share < 0.8 else ("#f0ad4e" if share < 1 else "#d9534f")
    left = "quota not set on a GREEN-API connection" if r.quota is None else f"{r.left} left"
    bar = (f'<svg class="bar" role="img" aria-label="{r.calls} of {r.quota or "?"} used" width="600" height="22">'
           f'<rect width="600" height="22" rx="4" fill="#e9ecef"/>'
           f'<rect width="{600 * share:.1f}" height="22" rx="4" fill="{colour}"/></svg>')
    parts = [f'<section class="instance" data-instance="{e(r.instance_id)}"><h2>Instance {e(r.instance_id)}</h2>',
             f'<p class="usage"><strong>{r.calls}</strong> of {r.quota if r.quota is not None else "?"} '
             f'checkWhatsapp calls used in {e(r.month)} ({e(left)})</p>', bar, _per_day_chart(r)]
    if r.quota_conflict:
        parts.insert(2, f'<p class="error quota-conflict" role="alert">Quota conflict: '
                        f'{e(r.conflict_text() or "")}</p>')
    if r.next_auto:
        parts.append(f'<p class="next-auto">Next run of <code>{e(str(r.next_auto["dag_id"]))}</code> on '
                     f'<code>max_checks="auto"</code>: <strong>{r.next_auto["budget"]}</strong> checks '
                     f'<small>({e(r.next_auto["explanation"])}; before any quota_reserve)</small></p>')
    else:
        parts.append('<p class="next-auto">Next auto budget: unknown (needs the quota and a scheduled DAG '
                     "that ran on this instance).</p>")
    rows = "".join(
        f"<tr><td>{e(run.started_at.strftime('%Y-%m-%d %H:%M') if run.started_at else '')}</td>"
        f"<td>{e(run.dag_id or '')}</td><td>{e(run.run_id or '')}</td><td class=n>{run.checks}</td>"
        f"<td class=n>{'' if run.budget is None else run.budget}</td><td>{e(run.state)}</td></tr>"
        for run in r.runs[:10])
    if rows:
        parts.append('<table class="runs"><thead><tr><th>Started (UTC)</th><th>DAG</th><th>Run</th>'
                     f'<th>Checks</th><th>Budget</th><th>State</th></tr></thead><tbody>{rows}</tbody></table>')
    parts.append("</section>")
    return "\n".join(parts)


def _per_day_chart(r: InstanceUsage) -> str:
    year, month = int(r.month[:4]), int(r.month[5:7])
    days = calendar.monthrange(year, month)[1]
    counts = [r.per_day.get(f"{r.month}-{d:02d}", 0) for d in range(1, days + 1)]
    top, width, height = max(counts) or 1, 18, 80
    bars = []
    for i, count in enumerate(counts):
        h = height * count / top
        bars.append(f'<rect x="{i * width + 2}" y="{height - h:.1f}" width="{width - 4}" height="{h:.1f}" '
                    f'fill="#128c7e"><title>{r.month}-{i + 1:02d}: {count} checks</title></rect>')
        if i % 5 == 0:
            bars.append(f'<text x="{i * width + 2}" y="{height + 14}" font-size="10">{i + 1}</text>')
    return (f'<figure><figcaption>Checks per day (UTC), most {max(counts)}</figcaption>'
            f'<svg class="per-day" role="img" aria-label="checks per day" width="{days * width}" '
            f'height="{height + 18}">{"".join(bars)}</svg></figure>')


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>GREEN-API quota {month}</title>
<style>body{{font-family:Liberation Sans,Arial,sans-serif;margin:16px;color:#212529}}
h1{{font-size:20px}}h2{{font-size:16px;margin:18px 0 6px}}.error{{color:#b02a37}}
table{{border-collapse:collapse;margin-top:8px}}td,th{{border-bottom:1px solid #dee2e6;padding:3px 8px;
font-size:13px;text-align:left}}td.n{{text-align:right}}figure{{margin:8px 0}}figcaption{{font-size:12px}}
section{{border:1px solid #dee2e6;border-radius:6px;padding:8px 14px;margin-top:12px}}</style></head>
<body><h1>GREEN-API usage, {month}</h1>
{body}
</body></html>"""


def _enabled() -> bool:
    """``[greenapi] quota_view = False`` (or AIRFLOW__GREENAPI__QUOTA_VIEW=False) hides the view."""
    from airflow_provider_greenapi._compat import conf

    return bool(conf.getboolean("greenapi", "quota_view", fallback=True))


class GreenApiQuotaPlugin(AirflowPlugin):
    """Loaded by every Airflow process through the ``airflow.plugins`` entry point of the provider's package."""

    name = "greenapi_quota"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "GREEN-API quota"}] if _enabled() else []
    external_views = [{"name": "GREEN-API quota", "href": f"{URL_PREFIX}{PAGE}", "destination": "nav",
                       "url_route": "greenapi-quota"}] if _enabled() else []




__all__ = ["GreenApiQuotaPlugin", "app", "quota_page"]
