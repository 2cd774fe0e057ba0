"""Languages and accessibility, checked mechanically: no text in a template outside a translation call, no
message without a translation in each of the six catalogs, a label on every control of every page,
visible focus, WCAG 2.1 AA contrast for every colour pair in both schemes, and a stylesheet that
mirrors itself for right-to-left pages."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cases.conftest import Side, draft, sent_preservation
from cyberpact.kit import i18n_extract
from cyberpact.kit.i18n import LANGUAGES, SOURCE_LANGUAGE, missing_translations, translator
from cyberpact.web.render import STATIC, TEMPLATES

from .helpers import person

TRANSLATED = [lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE]
CSS = (STATIC / "desk.css").read_text(encoding="utf-8")
# Article citations are written the same in every language (see the header of messages.pot), and a
# template may show one as it is, like the catalog does.
CITATION = re.compile(r"\bart\. \d+(?:\(\d+\))*(?:\([a-z]\))?")
# Names of algorithms are identifiers, the same in every language.
IDENTIFIERS = re.compile(r"\b(SHA-256|BLAKE2b)\b")
TRANSLATABLE_ATTRIBUTES = ("aria-label", "title", "placeholder", "alt", "aria-description")


def desk_messages() -> list[i18n_extract.Message]:
    return [m for m in i18n_extract.all_messages() if m.location[0].startswith(("web/", "reports/"))]


# --- translations ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_desk_message_is_translated(lang: str) -> None:
    ids = i18n_extract.msgids(desk_messages())
    assert len(ids) > 250, "the extraction must see the desk's templates and code"
    missing = missing_translations(lang, ids)
    assert not missing, f"{lang}: run python -m cyberpact.kit.i18n_extract and translate: {missing[:20]}"


def test_plural_forms_follow_each_language() -> None:
    assert translator("ru").ngettext("%(n)s request", "%(n)s requests", 3) != translator("ru").ngettext(
        "%(n)s request", "%(n)s requests", 5
    )
    assert translator("en").ngettext("%(n)s request", "%(n)s requests", 1) == "%(n)s request"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in TRANSLATABLE_ATTRIBUTES and value:
                self.attrs.append((name, value))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.texts.append(data)


def _has_words(text: str) -> bool:
    text = IDENTIFIERS.sub("", CITATION.sub("", text))
    return any(unicodedata.category(ch).startswith("L") for ch in text)


def _untranslated(source: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Text a reader would see that no translation call produces."""
    source = re.sub(r"\{#.*?#\}", "", source, flags=re.S)
    source = re.sub(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}", "", source, flags=re.S)
    source = re.sub(r"\{\{.*?\}\}", "", source, flags=re.S)
    source = re.sub(r"\{%.*?%\}", "", source, flags=re.S)
    parser = _Text()
    parser.feed(source)
    texts = [t.strip() for t in parser.texts if _has_words(t)]
    attrs = [(n, v) for n, v in parser.attrs if _has_words(v)]
    return texts, attrs


def templates() -> Iterator[Path]:
    return iter(sorted(TEMPLATES.glob("*.html")))


@pytest.mark.parametrize("path", list(templates()), ids=lambda p: p.name)
def test_no_template_text_outside_a_translation(path: Path) -> None:
    texts, attrs = _untranslated(path.read_text(encoding="utf-8"))
    assert not texts, f"{path.name}: wrap in _() or {{% trans %}}: {texts}"
    assert not attrs, f"{path.name}: translate these attributes: {attrs}"


def test_the_scanner_catches_bare_text() -> None:
    texts, attrs = _untranslated('<p>Hello {{ name }}</p><a title="Open">{{ _("x") }}</a> · art. 42(2)(e)')
    assert texts == ["Hello"] and attrs == [("title", "Open")]
    assert _untranslated('{% trans n=1 %}Hello {{ n }}{% endtrans %} <b>{{ _("Hi") }}</b>') == ([], [])


# --- accessibility of rendered pages ---------------------------------------------------------------------


class _Controls(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.ids: list[str] = []
        self.in_label = 0
        self.h1 = 0
        self.main = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "label":
            self.in_label += 1
            if a.get("for"):
                self.label_for.add(str(a["for"]))
        if tag == "h1":
            self.h1 += 1
        if tag == "main":
            self.main += 1
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit", "button"):
            self.controls.append({**a, "_wrapped": "1" if self.in_label else None, "_tag": tag})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.in_label -= 1


def _check_page(name: str, html: str) -> None:
    parser = _Controls()
    parser.feed(html)
    unlabelled = [
        c
        for c in parser.controls
        if not (
            c["_wrapped"]
            or (c.get("id") and c["id"] in parser.label_for)
            or c.get("aria-label")
            or c.get("aria-labelledby")
        )
    ]
    assert not unlabelled, f"{name}: controls without a label: {unlabelled}"
    assert parser.h1 == 1, f"{name}: one h1 per page"
    assert parser.main == 1, f"{name}: one main landmark"
    duplicates = {i for i in parser.ids if parser.ids.count(i) > 1}
    assert not duplicates, f"{name}: duplicate ids {duplicates}"
    assert re.search(r'<html lang="[a-zA-Z-]+" dir="(ltr|rtl)">', html), name
    assert 'class="skip" href="#main"' in html, f"{name}: skip link"


def test_every_control_of_every_page_has_a_label(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    draft_id = draft(vn).json()["request"]["id"]
    an = person(vn.node, "an", "officer", "contact_point", "supervisor", "admin")
    kate = person(au.node, "kate", "central_authority", "officer")
    assert (
        an.post("/desk/evidence/new", {"case_ref": "C-1", "title": "Export"}, csrf=an_csrf(an)).status_code
        == 303
    )
    pid = re.search(r'href="/desk/evidence/([0-9a-f-]{36})"', an.get("/desk/evidence").text)
    assert pid
    # A second package whose destruction an asked for: the administrators' page then has its forms.
    an.post("/desk/evidence/new", {"case_ref": "C-1", "title": "Old export"}, csrf=an_csrf(an))
    listed = re.findall(r'href="/desk/evidence/([0-9a-f-]{36})"', an.get("/desk/evidence").text)
    asked = next(p for p in listed if p != pid.group(1))
    an.get(f"/desk/evidence/{asked}")
    assert an.post(f"/desk/evidence/{asked}/destroy", {"reason": "retention ended"}).status_code == 303
    pages = {
        "sign-in": an.client.get("/desk/sign-in").text,
        **{
            p: an.get(p).text
            for p in (
                "/desk",
                "/desk/inbox",
                "/desk/outbox",
                "/desk/new",
                "/desk/approvals",
                "/desk/evidence",
                "/desk/evidence/new",
                f"/desk/evidence/{pid.group(1)}",
                "/desk/directory",
                "/desk/intel",
                "/desk/intel/correlations",
                "/desk/charts",
                "/desk/admin/peers",
                "/desk/admin/deletions",
                "/desk/audit",
                f"/desk/evidence/{asked}",
                "/desk/preferences",
                f"/desk/requests/{rid}",
                f"/desk/cases/{vn.officer.get(f'/api/v1/requests/{rid}').json()['case_id']}",
                f"/desk/requests/{draft_id}/edit/authority",
                f"/desk/requests/{draft_id}/edit/particulars",
                f"/desk/requests/{draft_id}/edit/review",
            )
        },
        "incoming": kate.get(f"/desk/requests/{rid}").text,
        "register": kate.get("/desk/received").text,
        "register-form": kate.get("/desk/received", params={"type": "stored_data"}).text,
        "error": an.get("/desk/requests/00000000-0000-0000-0000-000000000000").text,
        "audit-refused-filter": an.get("/desk/audit", params={"since": "soon"}).text,
    }
    for name, html in pages.items():
        _check_page(name, html)


def an_csrf(p: object) -> str:
    from .helpers import Person, csrf_of

    assert isinstance(p, Person)
    p.get("/desk/evidence/new")
    return csrf_of(p.page)


def test_focus_is_always_visible() -> None:
    rule = re.search(r":focus-visible\s*\{([^}]*)\}", CSS)
    assert rule and re.search(r"outline:\s*\d+px solid var\(--focus-ring\)", rule.group(1))
    assert not re.search(r"outline:\s*(none|0)\b", CSS.replace("main:focus { outline: none; }", ""))


def test_the_stylesheet_uses_logical_properties_only() -> None:
    physical = re.findall(
        r"(?<![-\w])(margin|padding|border)-(left|right)\b|(?<![-\w])(left|right)\s*:|text-align:\s*(left|right)|float:\s*(left|right)",
        CSS,
    )
    assert not physical, physical


# --- contrast -----------------------------------------------------------------------------------------------


def _blocks() -> dict[str, dict[str, str]]:
    light = re.search(r"^:root\s*\{(.*?)^\}", CSS, flags=re.S | re.M)
    dark = re.search(r"prefers-color-scheme:\s*dark\)\s*\{\s*:root\s*\{(.*?)\}", CSS, flags=re.S)
    assert light and dark

    def parse(body: str) -> dict[str, str]:
        return dict(re.findall(r"(--[a-z0-9-]+):\s*([^;]+);", body))

    base = parse(light.group(1))
    return {"light": base, "dark": {**base, **parse(dark.group(1))}}


def _resolve(scheme: dict[str, str], name: str) -> tuple[float, float, float]:
    value = scheme[name].strip()
    while value.startswith("var("):
        value = scheme[value[4:-1].strip()].strip()
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", value), (name, value)
    return tuple(int(value[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_contrast_formula_matches_wcag() -> None:
    assert round(contrast((0, 0, 0), (1, 1, 1)), 1) == 21.0
    assert round(contrast(_hex("#767676"), (1, 1, 1)), 2) == 4.54


def _hex(value: str) -> tuple[float, float, float]:
    return tuple(int(value[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


# Text on backgrounds it is actually drawn on: each --X-fg on its --X-bg, and the page's text colours on
# the page and on panels.
EXTRA_TEXT_PAIRS = [
    ("--page-fg", "--page-bg"),
    ("--muted-fg", "--page-bg"),
    ("--muted-fg", "--surface-bg"),
    ("--link-fg", "--page-bg"),
    ("--link-fg", "--surface-bg"),
    ("--error-fg", "--page-bg"),
    ("--nav-fg", "--head-bg"),
    ("--head-fg", "--nav-bg"),
    ("--tlp-red-fg", "--tlp-bg"),
    ("--tlp-amber-fg", "--tlp-bg"),
    ("--tlp-green-fg", "--tlp-bg"),
    ("--tlp-clear-fg", "--tlp-bg"),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_colour_pair_meets_wcag_aa(scheme: str) -> None:
    colours = _blocks()[scheme]
    pairs = [(n, n[:-3] + "-bg") for n in colours if n.endswith("-fg") and n[:-3] + "-bg" in colours]
    pairs += EXTRA_TEXT_PAIRS
    assert len(pairs) >= 20
    failures = []
    for fg, bg in pairs:
        ratio = contrast(_resolve(colours, fg), _resolve(colours, bg))
        if ratio < 4.5:
            failures.append(f"{fg} on {bg}: {ratio:.2f}")
    # Non-text contrast (WCAG 1.4.11): chart series and the focus ring against the page, 3:1.
    for name in [n for n in colours if n.startswith("--series-")] + ["--focus-ring"]:
        ratio = contrast(_resolve(colours, name), _resolve(colours, "--page-bg"))
        if ratio < 3:
            failures.append(f"{name} on --page-bg: {ratio:.2f}")
    assert not failures, failures
