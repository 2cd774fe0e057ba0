"""`cyberpact init`, `keys`, `peers`, `outbox`, `messages` and `worker`."""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cyberpact.federation import delivery, identity, outbox, peers, proof, roster
from cyberpact.federation.models import NodeCard
from cyberpact.kit import migrate
from cyberpact.kit.cli import References, cli_actor, console, friendly, keystore, settings, unit_of_work
from cyberpact.kit.db import Database
from cyberpact.kit.errors import MalformedInput

keys_app = typer.Typer(help="This node's keys and card.", no_args_is_help=True)
peers_app = typer.Typer(help="Trusted peers.", no_args_is_help=True)
outbox_app = typer.Typer(help="Outgoing messages.", no_args_is_help=True)
messages_app = typer.Typer(help="Messages and their proofs.", no_args_is_help=True)


def init() -> None:
    """Create this node's database, keys and card; print the fingerprint to share out of band."""
    s = settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(s.sqlalchemy_url)
    with unit_of_work() as (session, s, _db):
        card = identity.ensure_card(session, keystore(s), s, cli_actor())
        _show_card(card)


def _show_card(card: NodeCard) -> None:
    info = identity.read_card(json.loads(card.card))
    console.print(f"node {info.node_id} ({info.name}) at {info.base_url}")
    console.print(f"card #{card.seq}, valid until {info.valid_until:%Y-%m-%d}")
    console.print(f"fingerprint: [bold]{info.fingerprint}[/bold]")


@keys_app.command("show")
@friendly
def keys_show() -> None:
    """Show the current card, its keys and fingerprint."""
    with unit_of_work(read_only=True) as (session, _s, _db):
        card = identity.current_card(session)
        if card is None:
            raise typer.BadParameter("no card yet: run `cyberpact init`")
        _show_card(card)
        console.print(f"signing key {card.sig_kid}\nencryption key {card.enc_kid}")


@keys_app.command("rotate")
@friendly
def keys_rotate() -> None:
    """Replace the signing and encryption keys; the new card is vouched for by the old key."""
    with unit_of_work() as (session, s, _db):
        card = identity.rotate(session, keystore(s), s, cli_actor())
        _show_card(card)
    console.print("peers follow the new card automatically on the next message")


@peers_app.command("add")
@friendly
def peers_add(
    url: str, fingerprint: Annotated[str, typer.Option(help="as read out by the peer's admin")]
) -> None:
    """Fetch a node's card from URL and trust it, only if its fingerprint matches."""
    s = settings()
    url = peers.check_peer_url(s, url)
    with peers.http_client(s, timeout=10) as client:
        doc = peers.fetch_card_document(client, url)
    with unit_of_work() as (session, s, _db):
        peer = peers.add_peer(session, cli_actor(), s, doc, url, fingerprint)
        console.print(f"trusted {peer.node_id} ({peer.name}, {peer.country or '-'}) at {peer.base_url}")


@peers_app.command("list")
@friendly
def peers_list(all_: Annotated[bool, typer.Option("--all", help="include removed peers")] = False) -> None:
    """List peers with the fingerprints of the keys they use now."""
    with unit_of_work(read_only=True) as (session, _s, _db):
        rows = peers.list_peers(session, include_removed=all_)
        in_force = peers.keys_in_force(session, rows)
        table = Table(
            References("node"),
            "name",
            "country",
            "status",
            References("url"),
            References("fingerprint"),
            "card",
        )
        for p in rows:
            key = in_force[p.node_id]
            table.add_row(
                p.node_id,
                p.name,
                p.country or "",
                p.status,
                p.base_url,
                key.fingerprint + (f"\n{_rotated(key.rotated_at)}" if key.rotated_at else ""),
                str(p.card_seq),
            )
        console.print(table)


def _rotated(at: datetime) -> str:
    return f"changed since pinned: keys rotated {at:%Y-%m-%d}"


@peers_app.command("show")
@friendly
def peers_show(node_id: str) -> None:
    """Show a peer and the fingerprint of the keys it uses now, whole, to read out and compare."""
    with unit_of_work(read_only=True) as (session, _s, _db):
        p = peers.get_peer(session, node_id)
        key = peers.keys_in_force(session, [p])[p.node_id]
        lines = [
            f"node {p.node_id} ({p.name}, {p.country or '-'}) at {p.base_url}",
            f"status {p.status}, card #{p.card_seq}",
            f"fingerprint: {key.fingerprint}",
        ]
        if key.rotated_at:
            lines += [_rotated(key.rotated_at), f"pinned at first contact: {key.pinned}"]
        for line in lines:
            console.print(line, soft_wrap=True, highlight=False, markup=False)


def _status_command(status: str, verb: str) -> None:
    @peers_app.command(verb)
    @friendly
    def command(node_id: str) -> None:
        with unit_of_work() as (session, _s, _db):
            peers.set_status(session, cli_actor(), node_id, status)
        console.print(f"{node_id}: {status}")

    command.__doc__ = f"Mark a peer {status}."


_status_command("suspended", "suspend")
_status_command("active", "resume")
_status_command("removed", "remove")


roster_app = typer.Typer(
    help="Signed rosters: trust many peers on the word of a publisher already trusted.", no_args_is_help=True
)
peers_app.add_typer(roster_app, name="roster")


def _read_limited(path: Path) -> str:
    with path.open("rb") as f:
        data = f.read(roster.MAX_ROSTER_BYTES + 1)
    if len(data) > roster.MAX_ROSTER_BYTES:
        raise MalformedInput(f"{path} is over {roster.MAX_ROSTER_BYTES} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise MalformedInput(f"{path} is not UTF-8 text") from None


@roster_app.command("sign")
@friendly
def roster_sign(
    out: Annotated[Path, typer.Option("--out", help="where to write the signed roster")],
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", help='JSON {"nodes": [{node_id, base_url, fingerprint}]}; default: active peers'
        ),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="how long the roster stays in force")] = 30,
) -> None:
    """Sign, as this node, a roster of the nodes it vouches for."""
    entries: list[roster.RosterEntry] | None = None
    if source is not None:
        try:
            entries = roster.read_entries(json.loads(_read_limited(source)))
        except json.JSONDecodeError as exc:
            raise MalformedInput(f"{source} is not JSON: {exc}") from None
    with unit_of_work() as (session, s, _db):
        listed = entries if entries is not None else roster.entries_from_peers(session)
        signed = roster.sign(session, keystore(s), s, cli_actor(), listed, days=days)
    out.write_text(signed.token + "\n")
    console.print(f"signed a roster of {len(listed)} nodes into {out}")


@roster_app.command("import")
@friendly
def roster_import(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="a signed roster")],
) -> None:
    """Pin the nodes a trusted publisher's roster lists, each only if its card has the listed fingerprint."""
    token, s = _read_limited(path), settings()
    db = Database(s.sqlalchemy_url)
    try:
        result = roster.take(db, cli_actor(), s, token)
    finally:
        db.dispose()
    for node_id in result.added:
        console.print(f"trusted {node_id}")
    console.print(f"{len(result.unchanged)} already trusted with the same fingerprint")
    for node_id, why in result.refused.items():
        console.print(f"[yellow]refused[/yellow] {node_id}: {escape(why)}", highlight=False, soft_wrap=True)


@roster_app.command("trust")
@friendly
def roster_trust(node_id: str) -> None:
    """Take rosters signed by this (already trusted) peer."""
    with unit_of_work() as (session, _s, _db):
        roster.trust_publisher(session, cli_actor(), node_id)
    console.print(f"{node_id} now publishes rosters for this node")


@roster_app.command("distrust")
@friendly
def roster_distrust(node_id: str) -> None:
    """Take no more rosters from this peer (the peers its rosters added stay)."""
    with unit_of_work() as (session, _s, _db):
        roster.distrust_publisher(session, cli_actor(), node_id)
    console.print(f"{node_id} no longer publishes rosters for this node")


@roster_app.command("publishers")
@friendly
def roster_publishers() -> None:
    """The peers whose rosters this node takes."""
    with unit_of_work(read_only=True) as (session, _s, _db):
        table = Table(References("node"), "trusted at", References("by"), "last roster")
        for p in roster.list_publishers(session):
            table.add_row(
                p.node_id, f"{p.trusted_at:%Y-%m-%d %H:%M}", p.trusted_by, str(p.last_serial or "-")
            )
        console.print(table)


@roster_app.command("issued")
@friendly
def roster_issued(limit: int = 20) -> None:
    """The rosters this node signed, newest first."""
    with unit_of_work(read_only=True) as (session, _s, _db):
        table = Table("serial", "issued at", "in force until", References("by"), "nodes")
        for r in roster.list_issued(session, limit):
            issued, until = f"{r.issued_at:%Y-%m-%d %H:%M}", f"{r.valid_until:%Y-%m-%d %H:%M}"
            table.add_row(str(r.serial), issued, until, r.issued_by, str(r.nodes))
        console.print(table)


@outbox_app.command("list")
@friendly
def outbox_list(
    status: Annotated[str | None, typer.Option(help="pending, delivered, rejected or dead")] = None,
    limit: int = 50,
) -> None:
    """List outgoing messages, newest first."""
    with unit_of_work(read_only=True) as (session, _s, _db):
        table = Table("message", References("to"), "type", "status", "tries", "created", "error")
        for m in outbox.list_messages(session, status, limit):
            table.add_row(
                m.message_id,
                m.recipient,
                m.message_type,
                m.status,
                str(m.attempts),
                f"{m.created_at:%Y-%m-%d %H:%M:%S}",
                (m.last_error or "")[:60],
            )
        console.print(table)


@outbox_app.command("retry")
@friendly
def outbox_retry(message_id: str) -> None:
    """Put a dead or rejected message back in the queue."""
    with unit_of_work() as (session, _s, _db):
        outbox.retry(session, cli_actor(), message_id)
    console.print(f"{message_id} queued again")


@messages_app.command("send")
@friendly
def messages_send(
    recipient: str,
    text: str,
    conversation: Annotated[str | None, typer.Option(help="conversation id")] = None,
) -> None:
    """Queue a note to a peer (the worker in `cyberpact serve` or `cyberpact worker` delivers it)."""
    with unit_of_work() as (session, _s, _db):
        row = outbox.enqueue(
            session,
            cli_actor(),
            recipient=recipient,
            message_type="note",
            payload={"text": text},
            conversation_id=conversation,
        )
    console.print(f"queued {row.message_id}")


@messages_app.command("prove")
@friendly
def messages_prove(
    message_id: str,
    out: Annotated[Path, typer.Option(help="directory to write the proof into")] = Path("proof"),
) -> None:
    """Write the raw envelope, signed message, receipt and public keys, verifiable offline (a read of
    the message: audited)."""
    with unit_of_work() as (session, _s, _db):
        made = proof.prove(session, cli_actor(), message_id, out)
    for path in made.write(out):
        console.print(f"wrote {path}")


def worker() -> None:
    """Run an outbox worker on its own (several may run against one PostgreSQL database)."""
    s = settings()
    db = Database(s.sqlalchemy_url)
    w = delivery.OutboxWorker(db, keystore(s), s)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    w.start()
    console.print(f"outbox worker {w.worker_id} running; Ctrl-C to stop")
    stop.wait()
    w.stop()
    db.dispose()
