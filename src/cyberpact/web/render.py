"""Rendering desk pages: one Jinja2 environment (the product's i18n installed), the context every page
shares, and formatting in the viewer's language and time zone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import dates
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from cyberpact.audit.service import CHECK_JOB
from cyberpact.cases.deadlines import REMINDER
from cyberpact.catalog.service import Catalog, cite_in_words
from cyberpact.evidence.service import EVIDENCE_ROLES
from cyberpact.kit.errors import Problem
from cyberpact.kit.i18n import LANGUAGES, N_, Phrase, Translator, jinja_environment, translator
from cyberpact.kit.jobs import MAX_ATTEMPTS
from cyberpact.web.security import Viewer, negotiate_language

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = ("desk.css",)  # on every page; scripts are added only by the pages that need them

# Each language's name in itself, for the switcher: a reader lost in a foreign interface finds their own.
LANGUAGE_NAMES: Mapping[str, str] = {
    "en": "English",
    "fr": "Français",
    "es": "Español",
    "ru": "Русский",
    "zh": "中文",
    "ar": "العربية",
    "vi": "Tiếng Việt",
}
CASE_ROLES = ("officer", "supervisor", "central_authority", "contact_point")
DRAFTERS = ("officer", "contact_point", "central_authority")
CHART_ROLES = (*CASE_ROLES, "auditor")

# Titles of error pages by the error's stable code; anything else falls back to the status's own title.
ERROR_TITLES: Mapping[str, str] = {
    "csrf": N_("This form was refused"),
    "forbidden": N_("You may not do this"),
    "not_found": N_("Not found"),
    "invalid_input": N_("Some values are not valid"),
    "malformed": N_("The request could not be read"),
    "conflict": N_("This cannot be done now"),
    "transition_not_allowed": N_("This step is not allowed in the request's present state"),
    "locked_out": N_("Too many attempts"),
    "unauthenticated": N_("Please sign in again"),
    "method_not_allowed": N_("This page cannot be used this way"),
}
ERROR_HINTS: Mapping[str, str] = {
    "csrf": N_(
        "The page's security token was missing or wrong, so nothing was changed. "
        "Go back, reload the page and try again."
    ),
    "forbidden": N_("Your roles do not allow this. The attempt has been recorded."),
    "not_found": N_("There is nothing here, or it is not visible to you."),
    "method_not_allowed": N_(
        "The address is right, but not for what the browser asked of it. Open it from the desk."
    ),
    "transition_not_allowed": N_(
        "Someone may have acted on the request meanwhile. Open the request again to see what can be done now."
    ),
}


SECTION_TITLES: Mapping[str, str] = {
    "emergency": N_("Emergency requests"),
    "to_acknowledge": N_("Received: to acknowledge"),
    "questions": N_("The other State waits for our answer"),
    "expiring": N_("Preservations ending within 14 days"),
    "overdue": N_("Overdue requests"),
    "approvals": N_("Waiting for your approval"),
    "returned": N_("Returned to you for changes"),
    "undelivered": N_("Requests with undelivered messages"),
}
AUDIT_OUTCOMES: Mapping[str, str] = {"allowed": N_("Allowed"), "denied": N_("Refused")}
# What a broken chain means, by the kind of the first record that does not hold (audit.service.Finding).
CHAIN_FINDINGS: Mapping[str, str] = {
    "altered": N_("A record was changed after it was written."),
    "deleted": N_("Records are missing."),
    "inserted": N_("A record was inserted that was not part of the chain."),
    "reordered": N_("Records were put out of order."),
    "anchor": N_("A signed anchor does not hold."),
}
# A background walk of the chain (audit.models.AuditCheck.status).
AUDIT_CHECK_STATES: Mapping[str, str] = {
    "queued": N_("Waiting to start"),
    "running": N_("Running"),
    "intact": N_("Intact"),
    "broken": N_("Does not hold"),
    "failed": N_("Could not finish"),
}
# Background jobs by kind (kit.jobs), as an administrator is told of one that gave up.
JOB_KINDS: Mapping[str, str] = {
    REMINDER: N_("Preservation deadline reminder"),
    CHECK_JOB: N_("Audit chain check"),
}
PEER_STATES: Mapping[str, str] = {
    "active": N_("Active"),
    "suspended": N_("Suspended"),
    "removed": N_("Removed"),
}
MESSAGE_STATES: Mapping[str, str] = {
    "pending": N_("Being retried"),
    "dead": N_("Given up"),
    "rejected": N_("Refused by the peer"),
    "delivered": N_("Delivered"),
}
AUTHORITY_KINDS: Mapping[str, str] = {
    "central_authority": N_("Central authority"),
    "contact_point_24_7": N_("24/7 point of contact"),
    "competent_authority": N_("Competent authority"),
}
SORT_LABELS: Mapping[str, str] = {
    "created": N_("Date created"),
    "updated": N_("Last change"),
    "due": N_("Due date"),
    "status": N_("Status"),
    "type": N_("Type"),
    "state": N_("State"),
}


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str


def nav_for(viewer: Viewer) -> list[NavItem]:
    items = []
    if viewer.has_any(*CASE_ROLES):
        items += [
            NavItem("/desk", N_("Today")),
            NavItem("/desk/inbox", N_("Inbox")),
            NavItem("/desk/outbox", N_("Outbox")),
        ]
    if viewer.has_any(*DRAFTERS):
        items.append(NavItem("/desk/new", N_("New request")))
    if viewer.has_any("supervisor"):
        items.append(NavItem("/desk/approvals", N_("Approvals")))
    if viewer.has_any(*EVIDENCE_ROLES):
        items.append(NavItem("/desk/evidence", N_("Evidence")))
    items.append(NavItem("/desk/directory", N_("Directory")))
    items.append(NavItem("/desk/intel", N_("Intel")))
    if viewer.has_any(*CHART_ROLES):
        items.append(NavItem("/desk/charts", N_("Charts")))
    if viewer.has_any("auditor", "admin"):
        items.append(NavItem("/desk/audit", N_("Audit record")))
    if viewer.has_any("admin"):
        items.append(NavItem("/desk/admin/peers", N_("Peers")))
        items.append(NavItem("/desk/admin/deletions", N_("Deletions")))
    if not viewer.has_any(*CASE_ROLES):
        items.insert(0, NavItem("/desk", N_("Today")))
    return items


# --- formatting ------------------------------------------------------------------------------------------


def _t(context: Context) -> Translator:
    value = context.get("i18n")
    return value if isinstance(value, Translator) else translator("en")


class Clock:
    """``Translator.format_datetime(value, zone, "medium", zone=False)``, with Babel's patterns looked up
    once per language and zone instead of once per value (a long timeline formats a thousand times)."""

    def __init__(self, t: Translator, tz_name: str) -> None:
        self.locale = t.locale
        self.zone = ZoneInfo(tz_name)
        self.pattern = str(dates.get_datetime_format("medium", locale=self.locale)).replace("'", "")
        self.time = dates.get_time_format("medium", locale=self.locale)
        self.date = dates.get_date_format("medium", locale=self.locale)
        self._days: dict[date, str] = {}

    def __call__(self, value: datetime) -> str:
        local = value.astimezone(self.zone)
        day = local.date()
        # A timeline's entries share few days: each day is spelled out once.
        spelled = self._days.get(day)
        if spelled is None:
            if len(self._days) > 4096:
                self._days.clear()
            spelled = self._days[day] = self.date.apply(local, self.locale)
        return self.pattern.replace("{0}", self.time.apply(local, self.locale)).replace("{1}", spelled)


@lru_cache(maxsize=256)
def clock(lang: str, tz_name: str) -> Clock:
    return Clock(translator(lang), tz_name)


@pass_context
def format_dt(context: Context, value: datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):  # from a JSON column (a package's conditions on use)
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        at = value
    return clock(_t(context).lang, str(context.get("tz") or "UTC"))(at)


@pass_context
def format_date(context: Context, value: date | str | None, fmt: str = "medium") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        tz = str(context.get("tz") or "UTC")
        value = value.astimezone(ZoneInfo(tz)).date()
    return _t(context).format_date(value, fmt)  # type: ignore[arg-type]


@pass_context
def format_num(context: Context, value: int | float) -> str:
    return _t(context).format_number(value)


@pass_context
def country(context: Context, code: str | None) -> str:
    return _t(context).country_name(code) if code else ""


@pass_context
def language_name(context: Context, tag: str) -> str:
    return _t(context).language_name(tag)


@pass_context
def cite(context: Context, text: str | None) -> str:
    """A field's citation: an article as written in every language, a practice named in words translated
    (see :func:`cyberpact.catalog.service.cite_in_words`)."""
    if not text:
        return ""
    return _t(context).gettext(text) if cite_in_words(text) else text


@pass_context
def said(context: Context, text: str) -> str | None:
    """``text`` in the reader's language where it is a :class:`Phrase` their catalog translates; None where
    the page must show it as written, in English and marked so."""
    return text.translated(_t(context)) if isinstance(text, Phrase) else None


@pass_context
def problem_detail(context: Context, problem: Problem) -> Markup:
    """A problem's wording without the citation the page already shows beside it: in the reader's language
    when it is a text of the catalog (what to do about a missing field: its message, or "give the <label>")
    or a :class:`Phrase` the catalog translates, else the service's own words, in English and marked so for
    screen readers and right-to-left pages."""
    detail = problem.message
    if isinstance(detail, Phrase):
        words = said(context, detail)
        if words is not None:
            return Markup("{}").format(words)
        detail = detail.body
    elif problem.cite and detail.startswith(problem.cite + ": "):
        detail = detail[len(problem.cite) + 2 :]
    translated = _t(context).gettext(detail)
    if translated != detail:
        return Markup("{}").format(translated)
    return Markup('<span lang="en" dir="auto">{}</span>').format(detail)


def tlp_label(level: str) -> str:
    # TLP labels are written the same in every language (FIRST TLP 2.0): the badge is never translated.
    return f"TLP:{level.upper()}"


@cache
def environment() -> Environment:
    env = jinja_environment(FileSystemLoader(TEMPLATES))
    env.filters.update(
        dt=format_dt,
        day=format_date,
        num=format_num,
        country=country,
        language_name=language_name,
        tlp=tlp_label,
        problem_detail=problem_detail,
        said=said,
        cite=cite,
    )
    from cyberpact.cases.service import CHANNELS
    from cyberpact.web.views import (
        ACQUISITION_LABELS,
        DIRECTION_LABELS,
        EVENT_LABELS,
        EXPIRY_LABELS,
        PACKAGE_STATES,
        SIDE_LABELS,
        TRANSFER_STATES,
        WARNING_LABELS,
    )
    from cyberpact.web.wizard import step_of

    env.globals.update(
        LANGUAGE_NAMES=LANGUAGE_NAMES,
        LANGUAGES=LANGUAGES,
        SECTION_TITLES=SECTION_TITLES,
        SORT_LABELS=SORT_LABELS,
        EXPIRY_LABELS=EXPIRY_LABELS,
        CHANNELS=CHANNELS,
        SIDE_LABELS=SIDE_LABELS,
        DIRECTION_LABELS=DIRECTION_LABELS,
        PACKAGE_STATES=PACKAGE_STATES,
        TRANSFER_STATES=TRANSFER_STATES,
        WARNING_LABELS=WARNING_LABELS,
        step_of=step_of,
        ACQUISITION_LABELS=ACQUISITION_LABELS,
        EVENT_LABELS=EVENT_LABELS,
        AUTHORITY_KINDS=AUTHORITY_KINDS,
        PEER_STATES=PEER_STATES,
        MESSAGE_STATES=MESSAGE_STATES,
        AUDIT_OUTCOMES=AUDIT_OUTCOMES,
        CHAIN_FINDINGS=CHAIN_FINDINGS,
        AUDIT_CHECK_STATES=AUDIT_CHECK_STATES,
        JOB_KINDS=JOB_KINDS,
        MAX_JOB_ATTEMPTS=MAX_ATTEMPTS,
    )
    return env


def catalog_of(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def page(
    request: Request,
    viewer: Viewer | None,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    lang: str | None = None,
    scripts: tuple[str, ...] = (),
) -> HTMLResponse:
    lang = lang or (viewer.locale if viewer else negotiate_language(request))
    t = translator(lang)
    values: dict[str, Any] = {
        "i18n": t,
        "lang": lang,
        "html_lang": "zh-Hans" if lang == "zh" else lang,
        "dir": t.direction,
        "viewer": viewer,
        "csrf": viewer.csrf if viewer else "",
        "tz": viewer.timezone if viewer else "UTC",
        "nav": nav_for(viewer) if viewer else [],
        "path": request.url.path,
        "styles": ASSETS,
        "scripts": scripts,
        "catalog": getattr(request.app.state, "catalog", None),
        "node_name": request.app.state.settings.node_name,
    }
    values.update(context or {})
    html = environment().get_template(template).render(values)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, title: str, detail: str, code: str) -> HTMLResponse:
    viewer = getattr(request.state, "viewer", None)
    return page(
        request,
        viewer if isinstance(viewer, Viewer) else None,
        "error.html",
        {
            "status": status,
            "title_msgid": ERROR_TITLES.get(code),
            "hint_msgid": ERROR_HINTS.get(code),
            "title": title,
            "detail": detail,
            "code": code,
        },
        status=status,
    )
