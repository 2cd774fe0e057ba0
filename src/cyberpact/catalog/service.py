"""Loading the convention catalog and checking drafts against it.

The catalog is read once per process and validated as a whole (every cross-reference resolved), so a bad
edit stops the node at start with the file and the reason, never halfway through a request.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cyberpact.catalog.schemas import CatalogHead, FieldDef, Lifecycle, RequestType
from cyberpact.directory.codes import check_language_tag
from cyberpact.kit.errors import ConfigurationError, CyberpactError, NotFound, Problem
from cyberpact.kit.i18n import N_, Phrase
from cyberpact.kit.text import unsafe
from cyberpact.kit.time import check_timezone, utcnow

DATA = Path(__file__).resolve().parent / "data"
TEXT_MAX, LONGTEXT_MAX, LIST_MAX = 500, 20_000, 50
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{4,30}$")


@dataclass(frozen=True)
class Catalog:
    head: CatalogHead
    lifecycle: Lifecycle
    types: dict[str, RequestType]
    source_dir: Path

    @property
    def version(self) -> str:
        return self.head.version

    def type(self, type_id: str) -> RequestType:
        try:
            return self.types[type_id]
        except KeyError:
            raise NotFound(f"No request type {type_id!r}; known: {', '.join(sorted(self.types))}") from None

    def grounds_for(self, type_id: str) -> dict[str, Any]:
        allowed = set(self.type(type_id).grounds)
        return {g.id: g for g in self.head.grounds if g.id in allowed}

    def field_label(self, type_id: str, path: str) -> str | None:
        """The English label of a problem's field (``fields.x``, ``header.x``), for people to read instead
        of the path; None when the path names no catalog field."""
        section, _, name = path.partition(".")
        rt = self.types.get(type_id)
        defs = rt.fields if section == "fields" and rt else self.head.header if section == "header" else []
        return next((f.label for f in defs if f.name == name and f.label), None)

    def options(self, f: FieldDef) -> list[str]:
        if f.options_from == "mla_assistance":
            return [c.id for c in self.head.mla_assistance]
        return list(f.options)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.head.version,
            "convention": self.head.convention,
            "adopted": self.head.adopted.isoformat(),
            "source": self.head.source,
            "header": [f.model_dump(exclude_none=True) for f in self.head.header],
            "grounds": [g.model_dump() for g in self.head.grounds],
            "mla_assistance": [c.model_dump() for c in self.head.mla_assistance],
            "lifecycle": self.lifecycle.model_dump(by_alias=True),
            "types": [t.model_dump(exclude_none=True) for t in self.types.values()],
        }


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"catalog file {path.name}: {exc}") from exc


def _parse(model: Any, data: dict[str, Any], where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(f"catalog file {where}: {loc}: {first['msg']}") from exc


def load(directory: Path = DATA) -> Catalog:
    head: CatalogHead = _parse(CatalogHead, _read(directory / "catalog.toml"), "catalog.toml")
    lifecycle: Lifecycle = _parse(Lifecycle, _read(directory / "lifecycle.toml"), "lifecycle.toml")
    types: dict[str, RequestType] = {}
    for path in sorted((directory / "types").glob("*.toml")):
        rt: RequestType = _parse(RequestType, _read(path), f"types/{path.name}")
        if rt.id in types:
            raise ConfigurationError(f"catalog file types/{path.name}: request type {rt.id!r} defined twice")
        types[rt.id] = rt
    catalog = Catalog(head, lifecycle, types, directory)
    _check(catalog)
    return catalog


def _check(c: Catalog) -> None:
    """Resolve every cross-reference; the first dangling one stops the node with its location."""
    grounds = {g.id for g in c.head.grounds}
    states = set(c.lifecycle.states)
    header_names = {f.name for f in c.head.header}

    def fields_ok(where: str, fields: list[FieldDef], names: set[str]) -> None:
        seen: set[str] = set()
        for f in fields:
            if f.name in seen:
                raise ConfigurationError(f"catalog {where}: field {f.name!r} defined twice")
            seen.add(f.name)
            if f.type == "enum" and not (f.options or f.options_from == "mla_assistance"):
                raise ConfigurationError(f"catalog {where}: enum field {f.name!r} has no options")
            if f.max_days_ahead is not None and f.type != "date":
                raise ConfigurationError(f"catalog {where}: max_days_ahead on {f.name!r}, not a date field")
            if stray := sorted(set(f.option_labels) - set(f.options)):
                raise ConfigurationError(f"catalog {where}: {f.name!r} labels options it lacks: {stray}")
            for cond in (f.required_if, f.required_unless):
                if cond is not None and cond.field not in names:
                    raise ConfigurationError(
                        f"catalog {where}: {f.name!r} depends on unknown field {cond.field!r}"
                    )

    fields_ok("header", c.head.header, header_names)
    for name, action in c.lifecycle.actions.items():
        for state in [*action.from_, action.to]:
            if state not in states:
                raise ConfigurationError(f"catalog lifecycle: action {name!r} names unknown state {state!r}")
        fields_ok(f"lifecycle action {name}", action.fields, {f.name for f in action.fields})
    for t in c.types.values():
        where = f"types/{t.id}"
        fields_ok(where, t.fields, {f.name for f in t.fields} | header_names)
        clash = header_names & {f.name for f in t.fields}
        if clash:
            raise ConfigurationError(f"catalog {where}: fields {sorted(clash)} repeat header fields")
        for g in t.grounds:
            if g not in grounds:
                raise ConfigurationError(f"catalog {where}: unknown refusal ground {g!r}")
        for a in t.actions:
            if a not in c.lifecycle.actions:
                raise ConfigurationError(f"catalog {where}: unknown action {a!r}")
        for f in t.follow_up:
            if f not in c.types:
                raise ConfigurationError(f"catalog {where}: unknown follow-up type {f!r}")
        for a in t.consult_before:
            if a not in t.actions or "consult" not in t.actions:
                raise ConfigurationError(
                    f"catalog {where}: consult_before names {a!r}, but the type lacks it or the consult step"
                )
        if "refuse" in t.actions and not t.grounds:
            raise ConfigurationError(f"catalog {where}: refusal allowed but no grounds listed")


# A citation made only of article numbers ("art. 42(2)(e)", "art. 40 [parallel: UNTOC 18(4)]") stays as
# written in every language, so a reader can find it in the text. Any other carries words a person reads
# ("T-CY template: ticket number", "art. 24 (conditions and safeguards)", "four-eyes review") and is
# translated like a label; its translation keeps the article numbers and the name "T-CY" as written.
_NUMBER = r"[0-9][0-9a-z()\u2013-]*"  # 42(2)(e), 45-46 (en dash)
_ONLY_ARTICLES = re.compile(
    rf"arts?\. {_NUMBER}(?:, {_NUMBER})*(?: \[parallel: (?:UNTOC|Budapest) [0-9][0-9a-z()]*\])?"
)


def cite_in_words(cite: str) -> bool:
    return _ONLY_ARTICLES.fullmatch(cite) is None


@lru_cache(maxsize=4)
def get_catalog(directory: str | None = None) -> Catalog:
    return load(Path(directory) if directory else DATA)


# --- checking values ------------------------------------------------------------------------------------


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | dict):
        return bool(value)
    return True


def _required(f: FieldDef, values: dict[str, Any]) -> bool:
    if f.required:
        return True
    if f.required_if is not None:
        other = values.get(f.required_if.field)
        return other == f.required_if.equals if f.required_if.equals is not None else _present(other)
    if f.required_unless is not None:
        other = values.get(f.required_unless.field)
        return _present(other) and other != f.required_unless.equals
    return False


def _type_problem(c: Catalog, f: FieldDef, value: Any, received: bool = False) -> Phrase | str | None:
    """What is wrong with ``value`` as ``f``: the whole message, citation first."""
    name: object = Phrase(f.label) if f.label else f.name

    def said(msgid: str, **params: Any) -> Phrase:
        return Phrase(msgid, lead=f.cite, field=name, **params)

    t = f.type
    if t in ("text", "longtext", "email", "phone", "timezone", "language"):
        if not isinstance(value, str):
            return said(N_("{field} must be text"))
        limit = LONGTEXT_MAX if t == "longtext" else TEXT_MAX
        if len(value) > limit:
            return said(N_("{field} is longer than {limit} characters"), limit=limit)
        if reason := unsafe(value, short=t != "longtext"):
            # Translators: a field's name, then why its value cannot be kept ("Reference holds ...").
            return said(N_("{field} {reason}"), reason=reason)
        if t == "email" and not _EMAIL.match(value):
            return said(N_("{field} is not an e-mail address"))
        if t == "phone" and not _PHONE.match(value):
            return said(
                N_("{field} is not a telephone number (use international format, e.g. +61 2 6131 3000)")
            )
        if t == "timezone":
            try:
                check_timezone(value, f.name)
            except CyberpactError:
                return said(
                    N_("{field} {value} is not an IANA time zone (e.g. Asia/Ho_Chi_Minh)"), value=repr(value)
                )
        if t == "language":
            try:
                check_language_tag(value, f.name)
            except CyberpactError:
                return said(
                    N_("{field} {value} is not a BCP 47 language tag (e.g. en, vi, fr-CA)"), value=repr(value)
                )
        return None
    if t == "date":
        if not isinstance(value, str):
            return said(N_("{field} must be a date (YYYY-MM-DD)"))
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return said(N_("{field} must be a date (YYYY-MM-DD)"))
        if f.max_days_ahead is not None and not received:
            latest = utcnow().date() + timedelta(days=f.max_days_ahead)
            if day > latest:
                return said(
                    N_(
                        "{field} is more than {days} days ahead: give {latest} at the latest; a longer "
                        "period is granted as an extension when it is needed"
                    ),
                    days=f.max_days_ahead,
                    latest=latest,
                )
        return None
    if t == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return said(N_("{field} must be a whole number"))
        if f.min is not None and value < f.min:
            if f.message:  # a text of the catalog, translated as such
                english = f"{f.label or f.name} {f.message}"
                return Phrase(f.message, lead=f.cite, english=english)
            return said(N_("{field} must be at least {min}"), min=f.min)
        if f.max is not None and value > f.max:
            return said(N_("{field} must be at most {max}"), max=f.max)
        return None
    if t == "boolean":
        return None if isinstance(value, bool) else said(N_("{field} must be true or false"))
    if t == "enum":
        options = c.options(f)
        return (
            None
            if value in options
            else said(N_("{field} must be one of: {options}"), options=", ".join(options))
        )
    if t in ("list", "grounds"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return said(N_("{field} must be a list of text"))
        if len(value) > LIST_MAX or any(len(v) > TEXT_MAX for v in value):
            return said(
                N_("{field} at most {entries} entries of at most {characters} characters"),
                entries=LIST_MAX,
                characters=TEXT_MAX,
            )
        return next(
            (
                # Translators: a field's name, an entry's number in its list, then why it cannot be kept.
                said(N_("{field} entry {entry} {reason}"), entry=i + 1, reason=r)
                for i, v in enumerate(value)
                if (r := unsafe(v, short=True))
            ),
            None,
        )
    return f"unknown field type {t}"  # pragma: no cover - the catalog schema forbids it


def check_values(
    c: Catalog,
    defs: list[FieldDef],
    values: dict[str, Any],
    prefix: str,
    allowed_grounds: set[str] | None = None,
    received: bool = False,
) -> list[Problem]:
    """Every problem with ``values`` against ``defs``, each citing the article that requires the field.

    ``received``: the values of a step a peer took. Their form is checked as ours is, but not the bounds
    this node sets its own officers (how far ahead a preservation may run): the other State decided under
    its own law, perhaps on an older catalog, and its decision is recorded as taken, not refused."""
    problems: list[Problem] = []
    known = {f.name for f in defs}
    for name in values:
        if name not in known:
            problems.append(
                Problem(f"{prefix}.{name}", Phrase("is not a field of this form"), "unknown_field")
            )
    for f in defs:
        value = values.get(f.name)
        path = f"{prefix}.{f.name}"
        if not _present(value):
            if _required(f, values):
                problems.append(Problem(path, f"{f.cite}: {f.prompt}", "missing", f.cite))
            continue
        issue = _type_problem(c, f, value, received)
        if issue:
            message = issue if isinstance(issue, Phrase) else f"{f.cite}: {f.label or f.name} {issue}"
            problems.append(Problem(path, message, "invalid", f.cite))
            continue
        if f.must_be is not None and value is not f.must_be:
            problems.append(Problem(path, f"{f.cite}: {f.prompt}", "must_be", f.cite))
        if f.type == "grounds" and allowed_grounds is not None and isinstance(value, list):
            bad = [g for g in value if g not in allowed_grounds]
            if bad:
                # Named by their labels, as the person chose them; the ids are what the API and the CLI take.
                grounds = {g.id: g for g in c.head.grounds}
                named = [
                    f"“{grounds[g].label}” ({g}, {grounds[g].cite})"
                    if g in grounds
                    else f"{g!r} (no such ground)"
                    for g in bad
                ]
                problems.append(
                    Problem(
                        path,
                        f"{f.cite}: {'; '.join(named)} "
                        f"{'does' if len(bad) == 1 else 'do'} not apply to this type of request; "
                        f"applicable: {', '.join(sorted(allowed_grounds))}",
                        "invalid",
                        f.cite,
                    )
                )
    return problems


@dataclass
class DraftReport:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "errors": [p.as_dict() for p in self.errors],
            "warnings": [p.as_dict() for p in self.warnings],
        }


@dataclass(frozen=True)
class RequestedState:
    """What the directory knows of the requested State, for the soft checks."""

    code: str
    name: str
    languages: frozenset[str]  # primary language subtags its authorities accept
    signed: bool
    ratified: bool


# The office each request type's channel names, as the warning below words it, and the article that routes
# requests to it. A node states its roles in the same names (Settings.node_roles, Peer.roles).
OFFICES: dict[str, tuple[str, str]] = {
    "contact_point_24_7": (N_("a 24/7 point of contact"), "art. 41"),
    "central_authority": (N_("a central authority"), "art. 40(13)"),
    "competent_authority": (N_("a competent authority"), "art. 40"),
}


def _and(items: list[Phrase]) -> Phrase:
    """``items`` joined with "and", in the reader's language (a node serves as two offices at most here)."""
    joined = items[0]
    for item in items[1:]:
        joined = Phrase(N_("{first} and {second}"), first=joined, second=item)
    return joined


def channel_warning(rt: RequestType, node: str, roles: list[Any]) -> Problem | None:
    """A warning when the requested node does not serve the channel the request type goes through.

    A warning, not a refusal: the 24/7 point of contact coordinates with its State's central authority
    (art. 41), some States route everything through one office, and a node that names no role has told us
    nothing to go by."""
    served = [Phrase(OFFICES[r][0]) for r in roles if r in OFFICES]
    if not served or rt.channel in roles:
        return None
    wanted, cite = OFFICES[rt.channel]
    params = {"type": Phrase(rt.label), "office": Phrase(wanted), "node": node, "served": _and(served)}
    english = (
        f"a request for {rt.label.lower()} goes to {wanted}; {node} serves only as {params['served']}: "
        f"choose a node that serves as {wanted}, unless that State takes such requests there"
    )
    message = Phrase(
        # Translators: {type} is the name of a request type, {office} and {served} offices such as "a
        # central authority", {node} a node's name and id.
        "a request for {type} goes to {office}; {node} serves only as {served}: choose a node that serves as "
        "{office}, unless that State takes such requests there",
        lead=cite,
        english=english,
        **params,
    )
    return Problem("counterpart", message, "wrong_channel", cite)


def check_draft(
    c: Catalog, type_id: str, header: dict[str, Any], fields: dict[str, Any], requested: RequestedState | None
) -> DraftReport:
    rt = c.type(type_id)
    report = DraftReport()
    report.errors += check_values(c, c.head.header, header, "header")
    report.errors += check_values(c, rt.fields, fields, "fields")
    warn = report.warnings.append
    language = str(header.get("language") or "")
    if requested is not None:
        primary = language.split("-")[0].lower()
        if requested.languages and primary not in requested.languages:
            cite = "art. 40 [parallel: UNTOC 18(14)]"
            stated: object = language or Phrase(N_("an unstated language"))
            accepted = ", ".join(sorted(requested.languages))
            # Translators: {state} is a State's name; {accepted} language tags such as "en, fr".
            said = Phrase(
                "{state} accepts {accepted}, not {language}",
                lead=cite,
                state=requested.name,
                accepted=accepted,
                language=stated,
            )
            warn(Problem("header.language", said, "language_not_accepted", cite))
        if not requested.signed and not requested.ratified:
            said = Phrase(
                "{state} has not signed or ratified the convention; it may not be bound to assist under it",
                lead="art. 64",
                state=requested.name,
            )
            warn(Problem("requested_country", said, "not_party", "art. 64"))
        elif not requested.ratified:
            said = Phrase(
                "{state} has signed but not ratified; the convention is not yet in force for it",
                lead="art. 65",
                state=requested.name,
            )
            warn(Problem("requested_country", said, "not_ratified", "art. 65"))
    if type_id == "preservation" and not _present(fields.get("follow_up_mla_planned")):
        said = Phrase(
            "no follow-up MLA request is planned yet; preservation lasts only until the period ends",
            lead="art. 42(7)",
        )
        warn(Problem("fields.follow_up_mla_planned", said, "no_follow_up", "art. 42(7)"))
    emergency = header.get("emergency") is True or rt.emergency
    if emergency and not _present(header.get("emergency_justification")) and not _present(fields.get("risk")):
        said = Phrase(
            "flagged as an emergency without saying what imminent risk to life or safety justifies it",
            lead="art. 2",
        )
        warn(Problem("header.emergency_justification", said, "emergency_unjustified", "art. 2"))
    return report
