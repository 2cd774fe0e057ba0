"""The product's one translation system: catalogs complete, Babel formatting, Jinja2 integration."""

from __future__ import annotations

import re
import shutil
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from jinja2 import DictLoader

from cyberpact.catalog.service import DATA, cite_in_words, load
from cyberpact.kit import i18n_extract
from cyberpact.kit.i18n import (
    LANGUAGES,
    SOURCE_LANGUAGE,
    direction,
    jinja_environment,
    message_catalog,
    missing_translations,
    translator,
)

TRANSLATED = [lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE]
_PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")
_ARTICLE = re.compile(r"\bart\. \d+(?:\(\d+\))*(?:\([a-z]\))?")


@pytest.fixture(scope="module")
def messages() -> list[i18n_extract.Message]:
    return i18n_extract.all_messages()


# --- the catalogs are complete ----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_of_the_catalog_and_templates_is_translated(
    lang: str, messages: list[i18n_extract.Message]
) -> None:
    msgids = i18n_extract.msgids(messages)
    assert len(msgids) > 150  # the real catalog and templates, not an empty extraction
    missing = missing_translations(lang, msgids)
    assert not missing, (
        f"{lang}: {len(missing)} untranslated; run python -m cyberpact.kit.i18n_extract: {missing}"
    )


def test_the_extraction_sees_every_kind_of_catalog_text(messages: list[i18n_extract.Message]) -> None:
    catalog = load()
    ids = i18n_extract.msgids(messages)
    expected = {
        *(f.label for f in catalog.head.header),
        *(f.help for f in catalog.head.header if f.help),
        *(g.label for g in catalog.head.grounds),
        *(c.label for c in catalog.head.mla_assistance),
        *catalog.lifecycle.states.values(),
        *(a.label for a in catalog.lifecycle.actions.values()),
        *(t.label for t in catalog.types.values()),
        *(t.summary for t in catalog.types.values()),
        *(f.label for t in catalog.types.values() for f in t.fields),
        *(f.help for t in catalog.types.values() for f in t.fields if f.help),
    }
    assert expected <= ids, expected - ids
    assert {"DRAFT — not sent", "Requesting State Party", "Ground for refusal", "Yes", "New request"} <= ids


def test_what_to_do_about_each_field_and_worded_citations_are_in_the_template() -> None:
    """Every field's instruction (its ``message``, or "give the <label>") and every citation with words is a
    msgid of the committed .pot: the desk shows them beside each missing field, in the reader's language."""
    catalog = load()
    fields = [
        *catalog.head.header,
        *(f for a in catalog.lifecycle.actions.values() for f in a.fields),
        *(f for t in catalog.types.values() for f in t.fields),
    ]
    cites = {f.cite for f in fields} | {t.article for t in catalog.types.values()}
    cites |= {t.consult_cite for t in catalog.types.values()}
    with i18n_extract.POT_PATH.open("rb") as fh:
        pot = {str(m.id) for m in read_po(fh) if m.id}
    expected = {f.message for f in fields if f.message} | {f.prompt for f in fields}
    expected |= {c for c in cites if cite_in_words(c)}
    assert "state why preservation is necessary" in expected and "T-CY template: ticket number" in expected
    assert expected <= pot, sorted(expected - pot)
    # An article alone is a citation, the same in every language: nothing to translate.
    assert not cite_in_words("art. 42(2)(e)") and not cite_in_words("art. 40 [parallel: UNTOC 18(4)]")
    assert "art. 42(2)(e)" not in pot


def test_the_template_file_is_current() -> None:
    assert i18n_extract.main(["--check"]) == 0, (
        "run python -m cyberpact.kit.i18n_extract and commit the result"
    )


@pytest.mark.parametrize("lang", TRANSLATED)
def test_translations_keep_placeholders_and_article_citations(lang: str) -> None:
    problems = []
    for m in message_catalog(lang):
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        for s in strings:
            if sorted(_PLACEHOLDER.findall(s)) != sorted(_PLACEHOLDER.findall(ids[-1])):
                problems.append(f"placeholders differ: {ids[0]!r} -> {s!r}")
            for cite in _ARTICLE.findall(ids[0]):
                if cite not in s:
                    problems.append(f"{cite!r} not kept in {s!r}")
            if s.strip() != s or "\n" in s:
                problems.append(f"stray white space in {s!r}")
    assert not problems, problems


def test_a_new_catalog_label_is_caught(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    with (data / "catalog.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[[mla_assistance]]\nid = "video_hearing"\nlabel = "Hearing by video conference"\n')
    messages = list(i18n_extract.catalog_messages(directory=data))
    new = [m for m in messages if m.msgid == "Hearing by video conference"]
    assert new and new[0].location[0].endswith("catalog.toml") and new[0].location[1] > 0
    for lang in TRANSLATED:
        assert missing_translations(lang, i18n_extract.msgids(messages)) == ["Hearing by video conference"]


def test_merging_the_template_keeps_translations_and_adds_the_new_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locale = tmp_path / "locale"
    shutil.copytree(i18n_extract.LOCALE_DIR, locale)
    monkeypatch.setattr(i18n_extract, "po_path", lambda lang: locale / lang / "LC_MESSAGES" / "messages.po")
    base = i18n_extract.all_messages()
    pot = i18n_extract.build_template([*base, i18n_extract.Message("Hearing by video conference", ("x", 1))])
    assert i18n_extract.update_po("fr", pot)
    assert i18n_extract.untranslated(pot)["fr"] == ["Hearing by video conference"]
    assert not i18n_extract.update_po("fr", pot)  # nothing more to merge: the file is left alone


# --- messages and plurals ---------------------------------------------------------------------------------


def test_gettext_falls_back_to_the_english_message() -> None:
    assert (
        translator("fr").gettext("Offence under investigation") == "Infraction faisant l'objet de l'enquête"
    )
    assert translator("fr").gettext("A label nobody translated") == "A label nobody translated"
    assert translator("en").gettext("Offence under investigation") == "Offence under investigation"
    assert translator("zh").gettext("") == ""


def test_plural_forms_follow_each_language() -> None:
    one, many = "Ground for refusal", "Grounds for refusal"
    assert translator("en").ngettext(one, many, 1) == one
    assert translator("en").ngettext(one, many, 3) == many
    assert translator("fr").ngettext(one, many, 0) == "Motif de refus"  # French counts 0 as singular
    assert translator("fr").ngettext(one, many, 2) == "Motifs de refus"
    assert translator("ar").ngettext(one, many, 1) == "سبب الرفض"
    assert translator("ar").ngettext(one, many, 2) == "سببا الرفض"  # the dual
    assert translator("ar").ngettext(one, many, 11) == "أسباب الرفض"
    assert translator("zh").ngettext(one, many, 5) == "拒绝理由"
    assert translator("ru").ngettext(one, many, 21) == "Основание для отказа"


def test_translators_are_built_once_per_language() -> None:
    assert translator("vi") is translator("vi")
    with pytest.raises(ValueError, match="unsupported language"):
        translator("de")


# --- dates, numbers, direction ----------------------------------------------------------------------------


def test_dates_in_each_language_on_the_viewers_clock() -> None:
    at = datetime(2026, 11, 3, 14, 5, tzinfo=UTC)
    assert "21:05" in translator("vi").format_datetime(at, "Asia/Ho_Chi_Minh")
    assert "3 novembre 2026" in translator("fr").format_datetime(at, "Europe/Paris")
    assert "15:05" in translator("fr").format_datetime(at, "Europe/Paris")
    assert "2026年11月3日" in translator("zh").format_datetime(at)
    assert translator("ru").format_date(date(2027, 1, 15)) == "15 января 2027\u202fг."  # noqa: RUF001 - Cyrillic, as CLDR writes it
    assert translator("es").format_date(date(2027, 1, 15)) == "15 de enero de 2027"
    with pytest.raises(ValueError, match="naive"):
        translator("en").format_datetime(datetime(2026, 11, 3, 14, 5))


def test_numbers_in_each_language_with_latin_digits() -> None:
    assert translator("en").format_number(1234567.5) == "1,234,567.5"
    assert translator("fr").format_number(1234567) == "1\u202f234\u202f567"
    assert translator("es").format_number(1234567) == "1.234.567"
    assert translator("ar").format_number(90) == "90"
    assert translator("vi").format_number(1234.5) == "1.234,5"


def test_direction_and_names() -> None:
    assert direction("ar") == "rtl"
    assert [direction(lang) for lang in LANGUAGES if lang != "ar"] == ["ltr"] * 6
    assert translator("ar").direction == "rtl"
    assert translator("fr").language_name("vi") == "vietnamien"
    assert translator("zh").country_name("VN") == "越南"
    assert translator("en").language_name("not a tag") == "not a tag"


# --- Jinja2 -----------------------------------------------------------------------------------------------


TEMPLATES = {
    "page.html": (
        '<p dir="{{ text_direction(lang) }}">{{ _("Yes") }}|{% trans %}Status{% endtrans %}|'
        '{{ _("Times are stated in the time zone %(zone)s.", zone=zone) }}|'
        '{{ ngettext("Ground for refusal", "Grounds for refusal", n) }}</p>'
    ),
}


def test_one_environment_serves_every_language_with_autoescape() -> None:
    env = jinja_environment(DictLoader(TEMPLATES))
    page = env.get_template("page.html")
    fr = page.render(i18n=translator("fr"), lang="fr", zone="<b>Asia/Ho_Chi_Minh</b>", n=2)
    assert fr == (
        '<p dir="ltr">Oui|État d&#39;avancement|Les heures sont indiquées dans le fuseau horaire '
        "&lt;b&gt;Asia/Ho_Chi_Minh&lt;/b&gt;.|Motifs de refus</p>"
    )
    ar = page.render(i18n=translator("ar"), lang="ar", zone="UTC", n=1)
    assert ar.startswith('<p dir="rtl">نعم|') and "سبب الرفض" in ar
    assert page.render(lang="en", zone="UTC", n=1).startswith(
        '<p dir="ltr">Yes|Status|'
    )  # no translator: English


def test_renders_in_parallel_threads_do_not_mix_languages() -> None:
    page = jinja_environment(DictLoader(TEMPLATES)).get_template("page.html")
    expected = {lang: page.render(i18n=translator(lang), lang=lang, zone="UTC", n=1) for lang in LANGUAGES}
    wrong: list[str] = []

    def work(lang: str) -> None:
        for _ in range(200):
            if page.render(i18n=translator(lang), lang=lang, zone="UTC", n=1) != expected[lang]:
                wrong.append(lang)

    threads = [threading.Thread(target=work, args=(lang,)) for lang in LANGUAGES]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not wrong
