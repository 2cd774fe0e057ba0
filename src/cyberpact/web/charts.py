"""Charts as inline SVG drawn on the server: no script, nothing fetched, the same page under the strict CSP.

Each chart is a small geometry (bars with coordinates and a series class) that one template macro draws;
colours come from the stylesheet's series classes, so both colour schemes and the contrast test cover
them. Every chart is followed by its figures as a table, for screen readers and for whoever prefers it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from babel import dates
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cyberpact.catalog.service import Catalog
from cyberpact.kit.http import get_database
from cyberpact.kit.i18n import N_, Translator, translator
from cyberpact.reports import service as reports
from cyberpact.web.render import CHART_ROLES, catalog_of, page
from cyberpact.web.security import CurrentViewer, DeskRoute, require

router = APIRouter(route_class=DeskRoute, include_in_schema=False)

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 48
SERIES = 10  # series classes s0..s9 in desk.css


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    series: int
    title: str  # the exact figure, shown as a tooltip and read by screen readers


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Legend:
    series: int
    label: str


@dataclass
class Chart:
    key: str
    title: str  # msgid
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    legend: list[Legend] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    horizontal: bool = False
    empty: bool = True


def _nice_max(value: float, ticks: int = 4, whole: bool = False) -> float:
    """The top of an axis: ``ticks`` equal steps of 1, 2 or 5 times a power of ten, covering ``value``;
    counts (``whole``) never get fractional steps."""
    needed = max(value, 1e-9) / ticks
    step = 1.0 if whole else 1e-3
    while True:
        for m in (1, 2, 5):
            if m * step >= needed:
                return m * step * ticks
        step *= 10


def _y_ticks(t: Translator, top: float, plot_h: float, count: int = 4) -> list[Tick]:
    return [
        Tick(TOP + plot_h - plot_h * i / count, t.format_number(round(top * i / count, 1)))
        for i in range(count + 1)
    ]


def month_label(t: Translator, month: str) -> str:
    year, mon = month.split("-")
    return dates.format_skeleton("yMMM", date(int(year), int(mon), 1), locale=t.locale)


def stacked_months(
    t: Translator, key: str, title: str, months: list[str], series: list[tuple[str, dict[str, int]]]
) -> Chart:
    """Bars per month, stacked by series; ``series`` is (label, {month: count}) in legend order."""
    chart = Chart(key, title)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = {m: sum(s[1].get(m, 0) for s in series) for m in months}
    top = _nice_max(max(totals.values(), default=0), whole=True)
    slot = plot_w / max(1, len(months))
    for i, month in enumerate(months):
        x = LEFT + i * slot + slot * 0.15
        base = float(TOP + plot_h)
        for s_index, (label, counts) in enumerate(series):
            n = counts.get(month, 0)
            if not n:
                continue
            h = plot_h * n / top
            base -= h
            chart.bars.append(
                Bar(
                    x,
                    base,
                    slot * 0.7,
                    h,
                    s_index % SERIES,
                    f"{month_label(t, month)} · {label}: {t.format_number(n)}",
                )
            )
        chart.x_ticks.append(Tick(LEFT + i * slot + slot / 2, month_label(t, month)))
    chart.y_ticks = _y_ticks(t, top, plot_h)
    chart.legend = [Legend(i % SERIES, label) for i, (label, _) in enumerate(series)]
    chart.columns = [label for label, _ in series]
    chart.rows = [[month_label(t, m), *(t.format_number(s[1].get(m, 0)) for s in series)] for m in months]
    chart.empty = not any(totals.values())
    return chart


def grouped_states(
    t: Translator,
    key: str,
    title: str,
    medians: list[reports.StateMedian],
    unit_hours: float,
    series: list[tuple[str, str]],
) -> Chart:
    """Horizontal bars per State, one per direction: the median in hours (or days) with its count."""
    chart = Chart(key, title, horizontal=True)
    by_state: dict[str, dict[str, reports.StateMedian]] = defaultdict(dict)
    for m in medians:
        by_state[m.country][m.direction] = m
    states = sorted(by_state)
    row_h = 22
    chart.height = TOP + BOTTOM + max(1, len(states)) * row_h * len(series) + 8
    plot_w = WIDTH - LEFT - RIGHT - 60
    top = _nice_max(max((m.median_hours / unit_hours for m in medians), default=0))
    y = TOP
    for code in states:
        chart.y_ticks.append(Tick(y + row_h * len(series) / 2, code))
        for s_index, (direction, label) in enumerate(series):
            found = by_state[code].get(direction)
            if found is not None:
                value = found.median_hours / unit_hours
                chart.bars.append(
                    Bar(
                        LEFT + 60,
                        y + 2,
                        max(1.0, plot_w * value / top),
                        row_h - 4,
                        s_index,
                        f"{t.country_name(code)} · {label}: {t.format_number(round(value, 1))} "
                        f"({t.format_number(found.requests)})",
                    )
                )
            y += row_h
    chart.x_ticks = [
        Tick(LEFT + 60 + plot_w * i / 4, t.format_number(round(top * i / 4, 1))) for i in range(5)
    ]
    chart.legend = [Legend(i, label) for i, (_, label) in enumerate(series)]
    chart.columns = [label for _, label in series]
    chart.rows = [
        [
            t.country_name(code),
            *(
                f"{t.format_number(round(by_state[code][d].median_hours / unit_hours, 1))} "
                f"({t.format_number(by_state[code][d].requests)})"
                if d in by_state[code]
                else ""
                for d, _ in series
            ),
        ]
        for code in states
    ]
    chart.empty = not states
    return chart


def build(catalog: Catalog, t: Translator, figures: reports.Figures) -> list[Chart]:
    charts = []
    for direction, title in (
        ("outgoing", N_("Requests sent per month, by type")),
        ("incoming", N_("Requests received per month, by type")),
    ):
        per_type: dict[str, dict[str, int]] = defaultdict(dict)
        for c in figures.per_month:
            if c.direction == direction:
                per_type[c.type][c.month] = per_type[c.type].get(c.month, 0) + c.count
        series = [
            (t.gettext(catalog.types[k].label) if k in catalog.types else k, per_type[k])
            for k in sorted(per_type)
        ]
        charts.append(stacked_months(t, f"per-month-{direction}", title, figures.months, series))
    directions = [
        ("outgoing", t.gettext("Our requests (their answer)")),
        ("incoming", t.gettext("Their requests (our answer)")),
    ]
    charts.append(
        grouped_states(
            t, "acknowledge", N_("Median hours to acknowledge, by State"), figures.acknowledge, 1, directions
        )
    )
    charts.append(
        grouped_states(t, "execute", N_("Median days to execute, by State"), figures.execute, 24, directions)
    )
    charts.append(
        stacked_months(
            t,
            "preservations",
            N_("Preservations met versus expired, by month preserved"),
            figures.months,
            [
                (t.gettext("Followed up in time"), {p.month: p.met for p in figures.preservations}),
                (t.gettext("Expired"), {p.month: p.expired for p in figures.preservations}),
                (t.gettext("Still running"), {p.month: p.running for p in figures.preservations}),
            ],
        )
    )
    return charts


@router.get("/desk/charts")
def charts_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, *CHART_ROLES)
    with get_database(request).transaction() as session:
        figures = reports.figures(session, viewer.actor)
    charts = build(catalog_of(request), translator(viewer.locale), figures)
    return page(request, viewer, "charts.html", {"charts": charts})
