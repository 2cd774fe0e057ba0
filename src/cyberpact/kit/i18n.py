"""One translation system for the whole product: gettext catalogs kept as ``.po`` files, read with Babel.

The ``.po`` files under ``cyberpact/locale`` are the only source: they are parsed once per process and
compiled in memory, so there is no ``.mo`` build step to forget and a translator's edit takes effect at
the next start. English is the source language and needs no catalog; any message a catalog lacks falls
back to its English msgid, never to an error.

Templates get the same translations through :func:`jinja_environment`: one environment serves every
language, because the gettext callables it installs look up the :class:`Translator` passed to each
``render`` call (as ``i18n``) instead of being bound to one language.
"""

from __future__ import annotations

import gettext as _gettext
import io
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from babel import Locale, dates, numbers
from babel.messages.catalog import Catalog as MessageCatalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import BaseLoader, Environment, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import escape

LANGUAGES: tuple[str, ...] = ("en", "fr", "es", "ru", "zh", "ar", "vi")
SOURCE_LANGUAGE = "en"
RTL: frozenset[str] = frozenset({"ar"})
DOMAIN = "messages"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

# Babel locale for each product language. Chinese is written in simplified characters (the UN's usage);
# plain "zh" would leave the script to CLDR's defaults.
BABEL_LOCALES: Mapping[str, str] = {
    "en": "en",
    "fr": "fr",
    "es": "es",
    "ru": "ru",
    "zh": "zh_Hans_CN",
    "ar": "ar",
    "vi": "vi",
}

Direction = Literal["rtl", "ltr"]
DateFormat = Literal["full", "long", "medium", "short"]


def N_(message: str) -> str:
    """Mark ``message`` for extraction where it is defined; it is translated later, where it is shown."""
    return message


class Phrase(str):
    """English text that keeps the msgid it was made from and the values put into it, so that a page can
    say it in its reader's language while clients, peers, logs and the command line read the English as
    before: a Phrase *is* that English ``str``.

    ``Phrase("Cannot {step} a request that is {state}", step=..., state=...)``: the msgid is a template
    with named placeholders, extracted like ``N_``. A value may be a Phrase itself (a catalog label, said
    in the reader's language with the rest), an int or a date (written as the reader writes them).
    ``lead`` is a citation the English opens with ("art. 42(7): ..."): pages show the citation apart, so
    the translation leaves it out. ``english`` is what clients read when it is not the template filled in:
    a step's id where the desk names the step by its label, or a library's own wording.

    Any string operation on a Phrase gives a plain ``str``: the text is then shown in English, marked so.
    """

    msgid: str
    params: Mapping[str, object]
    body: str  # the English without its lead

    def __new__(
        cls, msgid: str, /, *, lead: str | None = None, english: str | None = None, **params: object
    ) -> Phrase:
        if english is not None:
            body = english
        else:
            body = msgid.format_map({k: _english(v) for k, v in params.items()}) if params else msgid
        self = super().__new__(cls, f"{lead}: {body}" if lead else body)
        self.msgid, self.params, self.body = msgid, params, body
        return self

    def translated(self, t: Translator) -> str | None:
        """The phrase in ``t``'s language, without its lead; None where ``t``'s catalog lacks it, and the
        English must stand in."""
        if t.lang == SOURCE_LANGUAGE:
            return self.body
        said = t.gettext(self.msgid)
        if said == self.msgid:
            return None
        if not self.params:
            return said
        try:
            return said.format_map({k: _in_language(v, t) for k, v in self.params.items()})
        except (KeyError, IndexError, ValueError):
            # A translation whose placeholders do not match its msgid's: the English, not an error page.
            return None


def _english(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _in_language(value: object, t: Translator) -> str:
    if isinstance(value, Phrase):
        return value.translated(t) or value.body
    if isinstance(value, int) and not isinstance(value, bool):
        return t.format_number(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return t.format_date(value)
    return str(value)


def direction(lang: str) -> Direction:
    return "rtl" if lang in RTL else "ltr"


def check_language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}; one of: {', '.join(LANGUAGES)}")
    return lang


def po_path(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def message_catalog(lang: str, locale_dir: Path = LOCALE_DIR) -> MessageCatalog:
    """The parsed ``.po`` catalog of ``lang`` (an empty one for English, the source language).

    Not cached: a :class:`Translator` keeps only the compiled messages, and the parsed catalog (several
    megabytes across the seven languages) would otherwise stay in every node for its whole life.
    """
    check_language(lang)
    if lang == SOURCE_LANGUAGE:
        return MessageCatalog(locale=BABEL_LOCALES[lang], domain=DOMAIN)
    with po_path(lang, locale_dir).open("rb") as fh:
        return read_po(fh, locale=BABEL_LOCALES[lang], domain=DOMAIN)


class Translator:
    """Messages, plurals, dates and numbers in one language.

    Built once per language and process (see :func:`translator`) and immutable after, so one instance
    is safely shared by every thread and request.
    """

    def __init__(self, lang: str, catalog: MessageCatalog) -> None:
        self.lang = check_language(lang)
        self.locale: Locale = Locale.parse(BABEL_LOCALES[lang])
        self.direction: Direction = direction(lang)
        # Compiling to .mo in memory hands plural selection to the standard library's gettext, which
        # evaluates each catalog's Plural-Forms exactly as GNU gettext does; fuzzy entries are left out.
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        buffer.seek(0)
        self._gnu = _gettext.GNUTranslations(buffer)

    def __repr__(self) -> str:
        return f"Translator({self.lang!r})"

    def gettext(self, message: str) -> str:
        return self._gnu.gettext(message) if message else message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._gnu.ngettext(singular, plural, n)

    def format_datetime(
        self, value: datetime, tz_name: str = "UTC", fmt: DateFormat = "long", *, zone: bool = True
    ) -> str:
        """``value`` as a reader of this language writes it, on the clock of IANA zone ``tz_name``.

        ``zone=False`` leaves the zone out (the time itself stays in ``tz_name``) for pages that name the
        zone once: an offset such as +0700 is the one part of a date that right-to-left text reorders.
        """
        if value.tzinfo is None:
            raise ValueError("naive datetime: the zone it was taken in is unknown")
        tz = ZoneInfo(tz_name)
        if zone:
            return dates.format_datetime(value, fmt, tzinfo=tz, locale=self.locale)
        local = value.astimezone(tz)
        # Babel's own composition of date and time, with a time format that carries no zone.
        pattern = str(dates.get_datetime_format(fmt, locale=self.locale)).replace("'", "")
        return pattern.replace(
            "{0}", dates.format_time(local, "medium", tzinfo=None, locale=self.locale)
        ).replace("{1}", dates.format_date(local, fmt, locale=self.locale))

    def format_date(self, value: date, fmt: DateFormat = "long") -> str:
        return dates.format_date(value, fmt, locale=self.locale)

    def format_number(self, value: int | float | Decimal) -> str:
        # Latin digits in every language, Arabic included: the UN's Arabic documents use them, and a
        # figure must read the same as the references and identifiers around it.
        return numbers.format_decimal(value, locale=self.locale, numbering_system="latn")

    def language_name(self, tag: str) -> str:
        """The name, in this language, of the language a BCP 47 ``tag`` names; the tag when unknown."""
        try:
            name = Locale.parse(tag.replace("-", "_")).get_display_name(self.locale)
        except (ValueError, TypeError):
            return tag
        return name or tag

    def country_name(self, code: str) -> str:
        name = self.locale.territories.get(code.upper())
        return str(name) if name else code


@cache
def translator(lang: str) -> Translator:
    return Translator(lang, message_catalog(lang))


def missing_translations(lang: str, msgids: set[str]) -> list[str]:
    """The msgids of ``msgids`` that ``lang``'s catalog does not translate (absent, empty or fuzzy)."""
    catalog = message_catalog(lang)
    missing = []
    for msgid in sorted(msgids):
        message = catalog.get(msgid)
        strings = message.string if message is not None else ""
        forms = strings if isinstance(strings, tuple) else (strings,)
        if message is None or message.fuzzy or not all(forms):
            missing.append(msgid)
    return missing


# --- Jinja2 -------------------------------------------------------------------------------------------


def _active(context: Context) -> Translator:
    value = context.get("i18n")
    return value if isinstance(value, Translator) else translator(SOURCE_LANGUAGE)


def _escaped(context: Context, text: str) -> str:
    # Jinja's new-style gettext marks a translation safe so that it can %-format it with escaped values;
    # escaping it first keeps an "&" or "<" in a translation text, never markup.
    return escape(text) if context.eval_ctx.autoescape else text


@pass_context
def _context_gettext(context: Context, message: str) -> str:
    return _escaped(context, _active(context).gettext(message))


@pass_context
def _context_ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return _escaped(context, _active(context).ngettext(singular, plural, n))


def install_i18n(env: Environment) -> Environment:
    """Give ``env`` the i18n extension, with ``_``, ``gettext``, ``ngettext`` and ``{% trans %}`` taking
    their language from the ``i18n`` :class:`Translator` in each render's context (English without one).

    New-style gettext: ``_("%(n)s files", n=3)`` formats after translating; with autoescape on, both the
    translation and the values are escaped.
    """
    env.add_extension("jinja2.ext.i18n")
    install: Callable[..., None] = env.install_gettext_callables  # type: ignore[attr-defined]
    install(_context_gettext, _context_ngettext, newstyle=True)
    env.globals["text_direction"] = direction
    return env


def jinja_environment(loader: BaseLoader, **options: Any) -> Environment:
    """An autoescaping environment with the product's translations installed."""
    options.setdefault("autoescape", select_autoescape(default=True, default_for_string=True))
    options.setdefault("trim_blocks", True)
    options.setdefault("lstrip_blocks", True)
    return install_i18n(Environment(loader=loader, **options))  # noqa: S701 - autoescape set above
