"""Rebuild the message template (``messages.pot``) and bring every ``messages.po`` up to date with it.

Messages come from three places: the convention catalog (its TOML files are data, so no extractor
would see a label added there; they are read here directly), the Jinja2 templates of the package (Babel
with Jinja2's extractor) and the package's Python code (Babel's extractor: ``_``, ``gettext``,
``ngettext``, ``N_`` and the msgid of a ``Phrase``). Run after changing any of them::

    python -m cyberpact.kit.i18n_extract            # write messages.pot, merge it into each .po
    python -m cyberpact.kit.i18n_extract --check    # exit 1 if the .pot is stale or a translation is missing

A message new to a ``.po`` arrives untranslated (or fuzzy, when Babel finds a similar one), and
tests/kit/test_i18n.py fails until a translator fills it in.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog as MessageCatalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.pofile import read_po, write_po
from jinja2.ext import babel_extract

from cyberpact import __version__
from cyberpact.catalog.schemas import FieldDef
from cyberpact.catalog.service import DATA as CATALOG_DIR
from cyberpact.catalog.service import Catalog, cite_in_words, load
from cyberpact.kit.i18n import BABEL_LOCALES, DOMAIN, LANGUAGES, LOCALE_DIR, SOURCE_LANGUAGE, po_path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
POT_PATH = LOCALE_DIR / f"{DOMAIN}.pot"
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None, "Phrase": None}
# Python that never shows text to a person; skipping it keeps extraction fast and the .pot free of noise.
_SKIP_DIRS = {"migrations", "locale", "__pycache__"}
HEADER_COMMENT = """\
# Translations of cyberpact: the labels of the convention catalog and of the formal documents.
# These go to foreign ministries: keep the Convention's own terms in each language. Article citations
# (art. 42(2)(e) and the like), identifiers and placeholders such as %(zone)s stay as in the English; a
# citation with words ("T-CY template: ticket number", "art. 24 (conditions and safeguards)") keeps its
# article numbers, "[parallel: ...]" and the name "T-CY" and translates the words.
# Rebuild with: python -m cyberpact.kit.i18n_extract
#"""


@dataclass(frozen=True)
class Message:
    msgid: str | tuple[str, ...]
    location: tuple[str, int]  # line 0: unknown
    comment: str | None = None


# --- the catalog ------------------------------------------------------------------------------------------


class _Lines:
    """Line numbers of strings in a TOML file, so a translator can find where a label is defined."""

    def __init__(self, path: Path) -> None:
        self.name = (
            path.relative_to(PACKAGE_DIR).as_posix() if path.is_relative_to(PACKAGE_DIR) else path.name
        )
        self.lines = path.read_text(encoding="utf-8").splitlines()

    def at(self, text: str) -> tuple[str, int]:
        quoted = json.dumps(text, ensure_ascii=False)
        for number, line in enumerate(self.lines, start=1):
            if quoted in line:
                return self.name, number
        return self.name, 0


def catalog_messages(catalog: Catalog | None = None, directory: Path = CATALOG_DIR) -> Iterator[Message]:
    """Every text of the catalog a person reads: labels, help, summaries, states and actions, what to do
    about a missing field (its ``message``, or the "give the ..." made from its label) and citations that
    carry words."""
    catalog = catalog or load(directory)
    head = _Lines(directory / "catalog.toml")
    for f in catalog.head.header:
        yield Message(f.label, head.at(f.label), f"Header field label ({f.cite})")
        yield from _cite(f, head)
        if f.help:
            yield Message(f.help, head.at(f.help), f"Help for the header field {f.label!r}")
        yield from _choices(f, head)
        yield from _prompt(f, head, "the request header")
    for g in catalog.head.grounds:
        yield Message(g.label, head.at(g.label), f"Refusal ground ({g.cite})")
        if cite_in_words(g.cite):
            yield Message(g.cite, head.at(g.cite), f"What the refusal ground {g.label!r} cites, in words")
    for c in catalog.head.mla_assistance:
        yield Message(c.label, head.at(c.label), "Type of mutual legal assistance (art. 40)")
    life = _Lines(directory / "lifecycle.toml")
    for state in catalog.lifecycle.states.values():
        yield Message(state, life.at(state), "State of a request")
    for action in catalog.lifecycle.actions.values():
        yield Message(
            action.label, life.at(action.label), "Action on a request (a button or a timeline entry)"
        )
        for f in action.fields:
            if f.label:
                yield Message(f.label, life.at(f.label), f"Field of the action {action.label!r} ({f.cite})")
            yield from _cite(f, life)
            if f.help:
                yield Message(f.help, life.at(f.help), f"Help for the field {f.name!r} of {action.label!r}")
            yield from _choices(f, life)
            yield from _prompt(f, life, f"the action {action.label!r}")
    files = {_type_id(p): p for p in sorted((directory / "types").glob("*.toml"))}
    for rt in catalog.types.values():
        lines = _Lines(files.get(rt.id, directory / "types" / f"{rt.id}.toml"))
        yield Message(rt.label, lines.at(rt.label), f"Request type ({rt.article})")
        yield Message(rt.summary, lines.at(rt.summary), f"Summary of the request type {rt.label!r}")
        for article in (rt.article, rt.consult_cite):
            if cite_in_words(article):
                yield Message(
                    article, lines.at(article), f"Article of the request type {rt.label!r}, in words"
                )
        for f in rt.fields:
            if f.label:
                yield Message(f.label, lines.at(f.label), f"Field of {rt.label!r} ({f.cite})")
            yield from _cite(f, lines)
            yield from _choices(f, lines)
            if f.help:
                yield Message(f.help, lines.at(f.help), f"Help for the field {f.label!r} of {rt.label!r}")
            yield from _prompt(f, lines, repr(rt.label))


def _cite(f: FieldDef, lines: _Lines) -> Iterator[Message]:
    if cite_in_words(f.cite):
        yield Message(f.cite, lines.at(f.cite), f"What requires the field {f.label or f.name!r}, in words")


def _prompt(f: FieldDef, lines: _Lines, owner: str) -> Iterator[Message]:
    """What the desk tells a person to do about a missing or unconfirmed field, after "Missing: required
    by <its citation>." (the field's ``message``, or "give the <label>" when it has none)."""
    where = lines.at(f.message) if f.message else lines.at(f.label) if f.label else (lines.name, 0)
    yield Message(
        f.prompt,
        where,
        f"What to do when the field {f.label or f.name!r} of {owner} is missing: an instruction, shown after "
        '"Missing: required by <its citation>."',
    )


def _choices(f: FieldDef, lines: _Lines) -> Iterator[Message]:
    for option, label in f.option_labels.items():
        yield Message(label, lines.at(label), f"Choice {option!r} of the field {f.label or f.name!r}")


def _type_id(path: Path) -> str:
    import tomllib

    with path.open("rb") as fh:
        return str(tomllib.load(fh).get("id", path.stem))


# --- templates and code -----------------------------------------------------------------------------------


def _sources(suffixes: tuple[str, ...], root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.suffix in suffixes and not _SKIP_DIRS.intersection(path.relative_to(root).parts):
            yield path


def template_messages(root: Path = PACKAGE_DIR) -> Iterator[Message]:
    """Messages of every Jinja2 template in a ``templates`` directory of the package."""
    for path in _sources((".html", ".txt", ".xml"), root):
        if "templates" not in path.relative_to(root).parts:
            continue
        yield from _extract(babel_extract, path, root, {"extensions": "jinja2.ext.i18n", "trimmed": "false"})


def python_messages(root: Path = PACKAGE_DIR) -> Iterator[Message]:
    for path in _sources((".py",), root):
        if path.name == "i18n_extract.py":
            continue
        yield from _extract("python", path, root, {})


def _extract(method: object, path: Path, root: Path, options: dict[str, str]) -> Iterator[Message]:
    with path.open("rb") as fh:
        for lineno, msgid, comments, _context in extract(
            method,  # type: ignore[arg-type]
            fh,
            keywords=KEYWORDS,
            comment_tags=("Translators:",),
            options=options,
        ):
            yield Message(msgid, (path.relative_to(root).as_posix(), lineno), " ".join(comments) or None)


# --- the .pot and the .po files ---------------------------------------------------------------------------


def all_messages() -> list[Message]:
    return [*catalog_messages(), *template_messages(), *python_messages()]


def msgids(messages: Iterable[Message] | None = None) -> set[str]:
    """Every msgid the product shows (the singular of a plural message stands for it)."""
    return {m.msgid if isinstance(m.msgid, str) else m.msgid[0] for m in (messages or all_messages())}


def build_template(messages: Iterable[Message] | None = None) -> MessageCatalog:
    pot = _new_catalog(None)
    for m in messages or all_messages():
        if not m.msgid:
            continue
        existing = pot.get(m.msgid)
        if existing is not None:
            existing.locations.append(m.location)
            if m.comment and m.comment not in existing.auto_comments:
                existing.auto_comments.append(m.comment)
            continue
        pot.add(m.msgid, locations=[m.location], auto_comments=[m.comment] if m.comment else [])
    return pot


def _new_catalog(lang: str | None) -> MessageCatalog:
    return MessageCatalog(
        locale=BABEL_LOCALES[lang] if lang else None,
        domain=DOMAIN,
        header_comment=HEADER_COMMENT,
        project="cyberpact",
        version=__version__,
        copyright_holder="cyberpact contributors",
        msgid_bugs_address="",
        last_translator="cyberpact translators",
        language_team=f"cyberpact {lang}" if lang else "cyberpact",
        fuzzy=False,
    )


def _po_bytes(catalog: MessageCatalog, **options: bool) -> bytes:
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=110, sort_output=False, **options)
    return buffer.getvalue()


def _without_dates(data: bytes) -> list[bytes]:
    return [
        line
        for line in data.splitlines()
        if not line.startswith((b'"POT-Creation-Date', b'"PO-Revision-Date'))
    ]


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` unless only the dates differ, so an unchanged rebuild leaves no diff behind."""
    if path.exists() and _without_dates(path.read_bytes()) == _without_dates(data):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def write_template(pot: MessageCatalog) -> bool:
    return _write_if_changed(POT_PATH, _po_bytes(pot))


def update_po(lang: str, pot: MessageCatalog) -> bool:
    """Merge the template into ``lang``'s catalog: new messages untranslated, vanished ones dropped."""
    path = po_path(lang)
    if path.exists():
        with path.open("rb") as fh:
            po = read_po(fh, locale=BABEL_LOCALES[lang], domain=DOMAIN)
    else:
        po = _new_catalog(lang)
    po.update(pot, update_header_comment=False, update_creation_date=False)
    return _write_if_changed(path, _po_bytes(po, ignore_obsolete=True, include_previous=False))


def template_drift(pot: MessageCatalog) -> set[str]:
    """Msgids in ``pot`` but not in the committed template, or the other way round.

    Only the messages count: source line numbers move with every edit, and a check that failed on
    those would fail for nothing.
    """
    if not POT_PATH.exists():
        return {str(m.id) for m in pot if m.id}
    with POT_PATH.open("rb") as fh:
        committed = read_po(fh, domain=DOMAIN)
    return {str(m.id) for m in pot if m.id} ^ {str(m.id) for m in committed if m.id}


def untranslated(pot: MessageCatalog) -> dict[str, list[str]]:
    """For each translated language, the template's msgids its ``.po`` leaves untranslated or fuzzy."""
    out: dict[str, list[str]] = {}
    for lang in LANGUAGES:
        if lang == SOURCE_LANGUAGE:
            continue
        path = po_path(lang)
        if not path.exists():
            out[lang] = sorted(str(m.id) for m in pot if m.id)
            continue
        with path.open("rb") as fh:
            po = read_po(fh, locale=BABEL_LOCALES[lang], domain=DOMAIN)
        gaps = []
        for m in pot:
            if not m.id:
                continue
            t = po.get(m.id)
            forms = (t.string if isinstance(t.string, tuple) else (t.string,)) if t is not None else ("",)
            if t is None or t.fuzzy or not all(forms):
                gaps.append(m.id if isinstance(m.id, str) else m.id[0])
        if gaps:
            out[lang] = gaps
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cyberpact.kit.i18n_extract", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if anything is out of date"
    )
    args = parser.parse_args(argv)
    pot = build_template()
    if args.check:
        stale = sorted(template_drift(pot))
        gaps = untranslated(pot)
        if stale:
            print(f"{POT_PATH} is out of date ({len(stale)} messages differ): run {parser.prog}")
        for lang, ids in gaps.items():
            print(f"{lang}: {len(ids)} untranslated: " + "; ".join(repr(i) for i in ids[:5]))
        return 1 if stale or gaps else 0
    changed = [str(POT_PATH)] if write_template(pot) else []
    changed += [str(po_path(lang)) for lang in LANGUAGES if lang != SOURCE_LANGUAGE and update_po(lang, pot)]
    print(f"{len(pot)} messages; " + (f"updated {', '.join(changed)}" if changed else "nothing changed"))
    for lang, ids in untranslated(pot).items():
        print(f"{lang}: {len(ids)} to translate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
