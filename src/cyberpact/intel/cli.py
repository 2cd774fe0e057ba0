"""``cyberpact intel``: collections and grants, identities, import and export of STIX and MISP files."""

from __future__ import annotations

import json
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from cyberpact.accounts import service as accounts
from cyberpact.intel import correlate, federation, misp, misp_export, query, service, store
from cyberpact.kit.cli import cli_actor, console, count_progress, friendly, unit_of_work
from cyberpact.kit.errors import InvalidInput, MalformedInput, Problem
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.time import parse_rfc3339

app = typer.Typer(help="Threat intelligence: STIX/TAXII collections, MISP interchange.", no_args_is_help=True)
collections = typer.Typer(help="TAXII collections and who may use them.", no_args_is_help=True)
identities = typer.Typer(help="Which State each reporting identity speaks for.", no_args_is_help=True)
app.add_typer(collections, name="collections")
app.add_typer(identities, name="identities")

_BATCH = 5000


class Format(StrEnum):
    auto = "auto"
    stix = "stix"
    misp = "misp"


@collections.command("create")
@friendly
def collections_create(
    title: str,
    alias: Annotated[str | None, typer.Option(help="a short unique name usable in TAXII URLs")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    federate: Annotated[bool, typer.Option(help="share with peers as the markings allow")] = False,
    sharing_group: Annotated[
        list[str] | None, typer.Option("--peer", help="peer receiving GREEN/AMBER")
    ] = None,
    strict_recipient: Annotated[str | None, typer.Option(help="the one peer receiving AMBER+STRICT")] = None,
    default_tlp: Annotated[str, typer.Option(help="TLP assumed for unmarked objects")] = "amber",
) -> None:
    """Create a collection and print its id."""
    with unit_of_work() as (session, _, _db):
        row = service.create_collection(
            session,
            cli_actor(),
            title=title,
            description=description,
            alias=alias,
            federate=federate,
            sharing_group=sharing_group or [],
            strict_recipient=strict_recipient,
            default_tlp=default_tlp,
        )
        console.print(str(row.id))


@collections.command("list")
@friendly
def collections_list() -> None:
    """Every collection with its policy."""
    with unit_of_work(read_only=True) as (session, _, _db):
        for row, _acc in service.visible_collections(session, cli_actor()):
            peers = ",".join(row.sharing_group or []) or "-"
            origin = f" from={row.source_peer}" if row.source_peer else ""
            console.print(
                f"{row.id}  {row.alias or '-':<16} {row.title}  "
                f"(federate={'yes' if row.federate else 'no'} default_tlp={row.default_tlp} peers={peers}"
                f"{origin})",
                highlight=False,
            )


@collections.command("grant")
@friendly
def collections_grant(
    collection: Annotated[str, typer.Argument(help="collection id or alias")],
    username: str,
    read: Annotated[bool, typer.Option("--read/--no-read")] = True,
    write: Annotated[bool, typer.Option("--write/--no-write")] = False,
) -> None:
    """Give (or, with --no-read --no-write, take away) a user's access to a collection."""
    with unit_of_work() as (session, _, _db):
        row = service.get_collection(session, collection)
        user = accounts.get_user(session, username)
        service.grant(session, cli_actor(), row, user, read=read, write=write)
        console.print(f"{username} on {row.alias or row.id}: read={read} write={write}", highlight=False)


@identities.command("set")
@friendly
def identities_set(
    reporter: Annotated[str, typer.Argument(help="identity--<uuid> or peer:<peer id>")],
    state: Annotated[str, typer.Argument(help="ISO 3166-1 alpha-2 code")],
    name: Annotated[str | None, typer.Option()] = None,
) -> None:
    with unit_of_work() as (session, _, _db):
        row = service.set_identity(session, cli_actor(), reporter, state, name)
        console.print(f"{row.reporter} -> {row.state}", highlight=False)


@identities.command("list")
@friendly
def identities_list() -> None:
    with unit_of_work(read_only=True) as (session, _, _db):
        for row in service.list_identities(session):
            console.print(f"{row.reporter}  {row.state}  {row.name or ''}", highlight=False)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Cannot read {path}", [Problem("file", str(exc))]) from None
    except (ValueError, RecursionError) as exc:
        raise MalformedInput(f"{path} is not JSON: {str(exc)[:200]}") from None


def _stix_objects(data: Any) -> list[Any] | None:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get("objects"), list):
        return list(data["objects"])  # a STIX bundle or a TAXII envelope
    return None


@app.command("import")
@friendly
def import_file(
    file: Annotated[Path, typer.Argument(help="a STIX 2.1 bundle or envelope, or MISP event JSON")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="collection id or alias")],
    fmt: Annotated[Format, typer.Option("--format")] = Format.auto,
) -> None:
    """Validate and store the objects of FILE; invalid objects are listed and the valid ones kept."""
    data = _load(file)
    skipped: list[str] = []
    as_misp = fmt == Format.misp or (fmt == Format.auto and misp.is_misp(data))
    objects = None if as_misp else _stix_objects(data)
    if objects is None and fmt == Format.stix:
        raise MalformedInput(f"{file} is not a STIX bundle, envelope or list of objects")
    stored = duplicates = 0
    failures: list[list[Any]] = []
    with unit_of_work() as (session, _, _db):
        row = service.get_collection(session, collection)
        if objects is None:
            converted = misp.misp_to_stix(data)
            misp.require_objects(converted, str(file))
            objects, skipped = converted.objects, converted.skipped
        actor = cli_actor()
        with count_progress("storing") as bar:
            task = bar.add_task("import", total=len(objects))
            for start in range(0, len(objects), _BATCH):
                result = store.add_objects(session, actor, row, objects[start : start + _BATCH])
                stored += result.stored
                duplicates += result.duplicates
                failures.extend(result.failures)
                bar.advance(task, min(_BATCH, len(objects) - start))
    for oid, _version, message in failures:
        console.print(f"refused {oid or '(no id)'}: {message}", highlight=False, soft_wrap=True, markup=False)
    for reason in skipped:
        console.print(f"skipped {reason}", highlight=False, soft_wrap=True, markup=False)
    console.print(f"stored {stored}, already present {duplicates}, refused {len(failures)}", highlight=False)


@app.command("pull")
@friendly
def pull(
    peer: Annotated[str, typer.Argument(help="the peer's node id")],
    collection: Annotated[str, typer.Argument(help="the collection's id (the same here and at the peer)")],
    since: Annotated[
        str | None, typer.Option(help="only what was added or deleted after this RFC 3339 time")
    ] = None,
) -> None:
    """Ask PEER for what it may share of COLLECTION; its answer arrives through the federation inbox."""
    after = None
    if since is not None:
        try:
            after = parse_rfc3339(since)
        except ValueError as exc:
            raise InvalidInput("Bad --since", [Problem("since", str(exc))]) from None
    with unit_of_work() as (session, _, _db):
        collection_id = parse_uuid(collection) or service.get_collection(session, collection).id
        row = federation.request_pull(session, cli_actor(), peer, collection_id, after)
        console.print(f"asked {peer} for {collection_id} (message {row.message_id})", highlight=False)


@app.command("export")
@friendly
def export_file(
    file: Annotated[Path, typer.Argument(help="where to write")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="collection id or alias")],
    fmt: Annotated[Format, typer.Option("--format")] = Format.stix,
    ids: Annotated[list[str] | None, typer.Option("--id", help="export only these STIX ids")] = None,
) -> None:
    """Write the latest version of each object (or of the --id ones) as a STIX bundle or a MISP event."""
    with unit_of_work(read_only=True) as (session, _, _db):
        row = service.get_collection(session, collection)
        cid = row.id
        objects = query.iter_objects(session, cid, ids=ids or ())
        count = 0
        with file.open("w", encoding="utf-8") as out:
            if fmt == Format.misp:
                event, skipped = misp_export.stix_to_misp(
                    objects, info=row.title, event_uuid=misp.export_uuid(cid, ids or ())
                )
                json.dump(event, out, ensure_ascii=False, indent=1)
                count = len(event["Event"]["Attribute"]) + len(event["Event"]["Object"])
                for reason in skipped:
                    console.print(f"skipped {reason}", highlight=False, soft_wrap=True, markup=False)
            else:
                # Streamed object by object: a collection of millions must not be held in memory.
                out.write(f'{{"type":"bundle","id":"bundle--{uuid.uuid4()}","objects":[')
                with count_progress("writing") as bar:
                    task = bar.add_task("export", total=None)  # streamed: the total is not known ahead
                    for obj in objects:
                        out.write(
                            ("," if count else "")
                            + json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
                        )
                        count += 1
                        if count % 1000 == 0:
                            bar.update(task, completed=count)
                out.write("]}\n")
    # Recorded once the file is written, in a unit of work of its own: the export streams a collection
    # of any size, and holding the write lock for all of it would stall every writer of the node.
    with unit_of_work() as (session, _, _db):
        service.record_read(
            session, cli_actor(), cid, f"export {fmt.value}", count, file=str(file), ids=len(ids or ())
        )
    console.print(  # a path is not folded: a script or a person copies it whole
        f"wrote {count} {'MISP attributes and objects' if fmt == Format.misp else 'objects'} to {file}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("correlations")
@friendly
def correlations(min_states: Annotated[int, typer.Option(min=2)] = 2, limit: int = 50) -> None:
    """Observables reported by several States, most recently seen first."""
    with unit_of_work() as (session, _, _db):
        found, _ = correlate.correlations(session, readable=None, min_states=min_states, limit=limit)
        service.record_read(session, cli_actor(), None, "cli correlations", len(found))
        for c in found:
            states = ", ".join(s.state for s in c.states)
            console.print(
                f"{c.kind} {c.value}  ({states})  {c.first_seen:%Y-%m-%d} .. {c.last_seen:%Y-%m-%d}",
                highlight=False,
            )
