"""Directory import and export, in JSON (one document) or CSV (one file per kind of record).

An import is all or nothing: every row is checked and applied inside the caller's unit of work, and the
first bad row raises an error naming that row and field, so the caller rolls everything back. Rows are
upserted by natural key (party code; authority party + kind + case-insensitive name; treaty status by
party). Export writes rows in natural-key order with no timestamps or ids, so that export, import into
another node and export again gives the same bytes.

CSV layout: the header row says which kind a file holds (``parties``, ``authorities`` or ``treaty``
columns, exactly as written by export). An empty cell is "not given"; lists of codes, language tags and
channels are space-separated; office hours read ``mon tue wed thu fri 09:00-17:00; sat 09:00-12:00``;
declarations and reservations are JSON arrays of ``{"article", "text"}``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cyberpact.directory import service
from cyberpact.directory.models import Authority, Party, TreatyStatus
from cyberpact.directory.schemas import (
    AuthorityFields,
    AuthorityIn,
    DirectoryDocument,
    PartyIn,
    TreatyRecord,
    TreatyStatusIn,
)
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import CyberpactError, InvalidInput, MalformedInput, Problem

Kind = Literal["parties", "authorities", "treaty"]
KINDS: tuple[Kind, ...] = ("parties", "authorities", "treaty")
Format = Literal["json", "csv"]
REJECTED = "Import rejected, nothing stored"
M = TypeVar("M", bound=BaseModel)

COLUMNS: dict[Kind, list[str]] = {
    "parties": list(PartyIn.model_fields),
    "authorities": ["party", *AuthorityFields.model_fields],
    "treaty": ["party", *TreatyStatusIn.model_fields],
}
_SPACED = {"members", "languages", "channels"}
_JSON_CELLS = {"declarations", "reservations"}


@dataclass(frozen=True)
class Row(Generic[M]):
    record: M
    where: str  # "parties[3]" or "parties.csv:4"; a field is appended as "parties[3].code"

    def field(self, name: str) -> str:
        return f"{self.where}.{name}"


@dataclass
class Batch:
    parties: list[Row[PartyIn]] = field(default_factory=list)
    authorities: list[Row[AuthorityIn]] = field(default_factory=list)
    treaty: list[Row[TreatyRecord]] = field(default_factory=list)

    def extend(self, other: Batch) -> None:
        self.parties += other.parties
        self.authorities += other.authorities
        self.treaty += other.treaty


@dataclass
class Summary:
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {k: {"created": 0, "updated": 0, "unchanged": 0} for k in KINDS}
    )

    def add(self, kind: Kind, outcome: str) -> None:
        self.counts[kind][outcome] += 1

    def __str__(self) -> str:
        return "; ".join(
            f"{kind}: " + ", ".join(f"{n} {what}" for what, n in c.items()) for kind, c in self.counts.items()
        )


def _rejected(problems: list[Problem]) -> InvalidInput:
    return InvalidInput(REJECTED, problems)


def _relabel(row: Row[Any], exc: CyberpactError) -> CyberpactError:
    problems = [Problem(row.field(p.field), p.message, p.code) for p in exc.problems]
    return type(exc)(REJECTED, problems or [Problem(row.where, exc.detail)])


# --- applying -----------------------------------------------------------------------------------------


def import_batch(session: Session, actor: Actor, batch: Batch) -> Summary:
    """Upsert every row, parties first; raise on the first bad row (the caller's rollback undoes all)."""
    summary = Summary()
    parties = {p.code: p for p in session.scalars(select(Party))}
    treaties = {t.party_code: t for t in session.scalars(select(TreatyStatus))}
    authorities = {
        (a.party_code, a.kind, a.name_key): a
        for a in session.scalars(select(Authority).options(selectinload(Authority.language_rows)))
    }
    seen: dict[Any, str] = {}

    def once(key: Any, row: Row[Any], name: str) -> None:
        if key in seen:
            raise _rejected([Problem(row.field(name), f"{seen[key]} already holds this record")])
        seen[key] = row.where

    for prow in batch.parties:
        once(("party", prow.record.code), prow, "code")
        try:
            values = service.party_values(prow.record)
            party, outcome = service.save_party(session, actor, values, parties.get(values["code"]))
        except CyberpactError as exc:
            raise _relabel(prow, exc) from exc
        parties[party.code] = party
        summary.add("parties", outcome)

    def party_of(row: Row[Any], code: str) -> Party:
        if code not in parties:
            raise _rejected(
                [Problem(row.field("party"), f"{code} is not a party in the directory or in this import")]
            )
        return parties[code]

    for trow in batch.treaty:
        once(("treaty", trow.record.party), trow, "party")
        party = party_of(trow, trow.record.party)
        try:
            tvalues = service.treaty_values(trow.record)
            status, outcome = service.save_treaty(session, actor, party, tvalues, treaties.get(party.code))
        except CyberpactError as exc:
            raise _relabel(trow, exc) from exc
        treaties[party.code] = status
        summary.add("treaty", outcome)

    for arow in batch.authorities:
        rec = arow.record
        key = (rec.party, rec.kind, rec.name.casefold())
        once(("authority", *key), arow, "name")
        party_of(arow, rec.party)
        try:
            avalues, languages = service.authority_values(rec, rec.party)
            authority, outcome = service.save_authority(
                session, actor, avalues, languages, authorities.get(key)
            )
        except CyberpactError as exc:
            raise _relabel(arow, exc) from exc
        authorities[key] = authority
        summary.add("authorities", outcome)
    return summary


def _document_batch(doc: DirectoryDocument) -> Batch:
    return Batch(
        parties=[Row(r, f"parties[{i}]") for i, r in enumerate(doc.parties)],
        authorities=[Row(r, f"authorities[{i}]") for i, r in enumerate(doc.authorities)],
        treaty=[Row(r, f"treaty_status[{i}]") for i, r in enumerate(doc.treaty_status)],
    )


def import_document(session: Session, actor: Actor, doc: DirectoryDocument) -> Summary:
    return import_batch(session, actor, _document_batch(doc))


def seed_document() -> DirectoryDocument:
    """The signatories and sample authorities shipped with the package (``data/signatories.json``)."""
    raw = resources.files("cyberpact.directory").joinpath("data", "signatories.json").read_bytes()
    return DirectoryDocument.model_validate_json(raw)


# --- reading files ------------------------------------------------------------------------------------


def _loc(loc: Sequence[int | str]) -> str:
    """A pydantic error location as the API names fields (``office_hours.0.opens``), except that the row
    of a document section reads ``authorities[2]`` as elsewhere in import errors."""
    parts = [str(p) for p in loc]
    if len(loc) > 1 and loc[0] in ("parties", "authorities", "treaty_status") and isinstance(loc[1], int):
        parts[:2] = [f"{loc[0]}[{loc[1]}]"]
    return ".".join(parts)


def _problems(exc: ValidationError, prefix: str) -> list[Problem]:
    return [
        Problem(f"{prefix}{_loc(e['loc'])}" if e["loc"] else prefix.rstrip("."), e["msg"], e["type"])
        for e in exc.errors()[:20]
    ]


def guess_format(path: Path, given: str | None) -> Format:
    fmt = given or path.suffix.lower().lstrip(".")
    if fmt == "json":
        return "json"
    if fmt == "csv":
        return "csv"
    problem = Problem(
        "format", f"cannot tell the format of {path.name}: name it .json or .csv, or give --format"
    )
    raise InvalidInput("Unknown file format", [problem])


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise InvalidInput("No such file", [Problem("file", f"{path} does not exist")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedInput(f"Cannot read {path.name}", [Problem(path.name, str(exc))]) from exc


def read_json(path: Path) -> Batch:
    text = _read_text(path)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedInput(
            f"{path.name} is not valid JSON",
            [Problem(path.name, f"line {exc.lineno} column {exc.colno}: {exc.msg}")],
        ) from exc
    try:
        doc = DirectoryDocument.model_validate(raw)
    except ValidationError as exc:
        raise _rejected(_problems(exc, "")) from exc
    return _document_batch(doc)


def _parse_hours(cell: str) -> list[dict[str, Any]]:
    hours = []
    for part in cell.split(";"):
        *days, span = part.split()
        opens, _, closes = span.partition("-")
        hours.append({"days": days, "opens": opens, "closes": closes})
    return hours


def _cell_value(column: str, cell: str) -> Any:
    if column in _SPACED:
        return cell.split()
    if column in _JSON_CELLS:
        return json.loads(cell)
    if column == "office_hours":
        return _parse_hours(cell)
    return cell


def read_csv(path: Path) -> Batch:
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)
    try:
        return _read_rows(reader, path.name)
    except csv.Error as exc:  # a stray quote, a NUL byte, a file cut off inside a quoted cell
        raise MalformedInput(
            f"{path.name} is not a readable CSV file", [Problem(f"{path.name}:{reader.line_num}", str(exc))]
        ) from exc


def _read_rows(reader: Any, name: str) -> Batch:
    header = next(reader, None)
    kind = next((k for k, cols in COLUMNS.items() if header == cols), None)
    if kind is None:
        raise _rejected(
            [
                Problem(
                    f"{name}:1",
                    "the header matches no directory layout; expected the "
                    "columns of an export: " + " | ".join(",".join(c) for c in COLUMNS.values()),
                )
            ]
        )
    models: dict[Kind, type[BaseModel]] = {
        "parties": PartyIn,
        "authorities": AuthorityIn,
        "treaty": TreatyRecord,
    }
    model = models[kind]
    columns = COLUMNS[kind]
    batch = Batch()
    targets: dict[Kind, list[Any]] = {
        "parties": batch.parties,
        "authorities": batch.authorities,
        "treaty": batch.treaty,
    }
    rows = targets[kind]
    start = reader.line_num + 1
    for cells in reader:
        where = f"{name}:{start}"
        start = reader.line_num + 1
        if not any(cells):
            continue
        if len(cells) != len(columns):
            raise _rejected([Problem(where, f"{len(cells)} cells where the header has {len(columns)}")])
        data: dict[str, Any] = {}
        for column, cell in zip(columns, cells, strict=True):
            if cell == "":
                continue
            try:
                data[column] = _cell_value(column, cell)
            except ValueError as exc:  # bad JSON or office hours; JSONDecodeError is a ValueError
                raise _rejected([Problem(f"{where}.{column}", f"cannot read {cell!r}: {exc}")]) from exc
        try:
            rows.append(Row(model.model_validate(data), where))
        except ValidationError as exc:
            raise _rejected(_problems(exc, f"{where}.")) from exc
    return batch


def read_files(paths: Iterable[Path], fmt: str | None = None) -> Batch:
    batch = Batch()
    for path in paths:
        reader: Callable[[Path], Batch] = read_json if guess_format(path, fmt) == "json" else read_csv
        batch.extend(reader(path))
    return batch


# --- exporting ----------------------------------------------------------------------------------------


def _party_first(data: dict[str, Any]) -> dict[str, Any]:
    return {"party": data.pop("party"), **data}


def export_records(session: Session, what: Kind | Literal["all"] = "all") -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if what in ("all", "parties"):
        out["parties"] = [
            service.party_record(p).model_dump(mode="json")
            for p in session.scalars(select(Party).order_by(Party.code))
        ]
    if what in ("all", "authorities"):
        query = (
            select(Authority)
            .options(selectinload(Authority.language_rows))
            .order_by(Authority.party_code, Authority.kind, Authority.name_key)
        )
        out["authorities"] = [
            _party_first(service.authority_record(a).model_dump(mode="json")) for a in session.scalars(query)
        ]
    if what in ("all", "treaty"):
        out["treaty"] = [
            {"party": t.party_code, **service.treaty_record(t).model_dump(mode="json")}
            for t in session.scalars(select(TreatyStatus).order_by(TreatyStatus.party_code))
        ]
    return out


def to_json(records: dict[str, list[dict[str, Any]]]) -> bytes:
    doc: dict[str, Any] = {"format": "cyberpact-directory", "version": 1}
    for kind, key in (("parties", "parties"), ("authorities", "authorities"), ("treaty", "treaty_status")):
        if kind in records:
            doc[key] = records[kind]
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode()


def _format_cell(column: str, value: Any) -> str:
    if value is None or value == []:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if column in _SPACED:
        return " ".join(value)
    if column in _JSON_CELLS:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if column == "office_hours":
        return "; ".join(" ".join([*h["days"], f"{h['opens']}-{h['closes']}"]) for h in value)
    return str(value)


def to_csv(kind: Kind, rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS[kind])
    for row in rows:
        writer.writerow([_format_cell(c, row[c]) for c in COLUMNS[kind]])
    return buffer.getvalue().encode()


def export(session: Session, fmt: Format, what: Kind | Literal["all"] = "all") -> bytes:
    if fmt == "csv" and what == "all":
        raise InvalidInput(
            "CSV holds one kind of record per file",
            [Problem("what", "give --what parties, --what authorities or --what treaty (one file each)")],
        )
    records = export_records(session, what)
    return to_json(records) if fmt == "json" else to_csv(what, records[what])  # type: ignore[arg-type]
