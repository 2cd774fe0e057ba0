"""Delivering the outbox: workers send queued messages in batches, in order within each conversation, with
backoff, a circuit breaker per peer and dead letters for what cannot be delivered.

Several workers, in several processes, may run against one PostgreSQL database: claims are serialised by
an advisory lock and recorded as leases, so no message is ever in two workers' hands at once.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import ColumnElement, Row, func, insert, or_, select, update
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.config import Settings
from cyberpact.federation import envelope, handlers, peers, settle
from cyberpact.federation.models import ConversationEvent, OutboxMessage, Peer, PeerKey, PeerLink
from cyberpact.federation.outbox import INBOX_PATH
from cyberpact.kit import crypto
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Database, Lock, advisory_lock, insert_missing
from cyberpact.kit.errors import IntegrityFailure, NotFound
from cyberpact.kit.keystore import KeyStore, public_keys
from cyberpact.kit.time import utcnow

log = logging.getLogger("cyberpact.federation.delivery")
# A worker claims up to this many batches for one peer at a time and pipelines them (see _deliver). A
# claim drains the pipeline at its end (the next one starts with a claim and a first seal while the peer
# waits), so claims are long: 8 batches of 500 moved 10-20 % more than 4 of 100 (bench_federation.py).
PIPELINE_BATCHES = 8
CARD_LOOK_SECONDS = 60.0
# What a sealed envelope weighs against its payload's JSON: base64 twice (the JWS, then the JWE), plus
# the headers, key, IV and tag of both layers.
_SEALED_PER_PAYLOAD_BYTE = 16 / 9
_SEALED_OVERHEAD = 2048


def _unleased(now: datetime) -> ColumnElement[bool]:
    """No worker holds the message: never leased, or its lease has run out."""
    return or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now)


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Waiting to be sent, its retry time reached, and free to claim."""
    return OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now, _unleased(now)


@dataclass
class RoundResult:
    claimed: int = 0
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    dead: int = 0
    peers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _PeerContext:
    """What delivering to one peer needs, read once per claim."""

    node_id: str
    base_url: str
    enc_jwk: dict[str, Any]
    sig_keys: dict[str, Any]
    signing_key: Any
    own_keys: dict[str, Any]


class OutboxWorker:
    """Delivers due messages. ``run_once`` is one round; ``start`` runs rounds on a thread until stopped."""

    def __init__(
        self,
        db: Database,
        keys: KeyStore,
        settings: Settings,
        client: httpx.Client | None = None,
        worker_id: str | None = None,
        on_left_over: Callable[[], None] | None = None,
    ) -> None:
        """``on_left_over``: called when a claim leaves conversations to the other workers (the pool wakes
        them, so that they do not wait out their poll before taking their share)."""
        self.db, self.keys, self.settings = db, keys, settings
        self.on_left_over = on_left_over
        self.client = client or peers.http_client(settings)
        self.worker_id = worker_id or f"{os.getpid()}-{secrets.token_hex(4)}"
        self._next_bury = 0.0
        self.buried = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # Posts a batch while this thread seals the next one and records the last one's receipts.
        self._sender = ThreadPoolExecutor(1, thread_name_prefix=f"outbox-post-{self.worker_id}")
        self._card_looked: dict[str, float] = {}  # peer -> monotonic time its card was last fetched

    # --- claiming -----------------------------------------------------------------------------------

    def _anything_due(self, now: datetime) -> bool:
        with self.db.transaction(read_only=True) as session:
            due = session.scalar(select(OutboxMessage.seq).where(*_due(now)).limit(1))
        return due is not None

    def _claim(self, now: datetime) -> list[OutboxMessage]:
        s = self.settings
        # An idle node polls several times a second per worker: a look in a read-only unit of work first,
        # so that an empty outbox takes neither SQLite's write lock nor the claim lock from the requests.
        if time.monotonic() < self._next_bury and not self._anything_due(now):
            return []
        with self.db.transaction() as session:
            advisory_lock(session, Lock.OUTBOX_CLAIM)
            if time.monotonic() >= self._next_bury:
                # Dead letters are a matter of hours; looking for them every round would cost a query
                # per delivery batch for nothing.
                self.buried += self._bury(session, now)
                self._next_bury = time.monotonic() + 5
            open_peers = set(session.scalars(select(PeerLink.peer_id).where(PeerLink.open_until > now)))
            inactive = set(session.scalars(select(Peer.node_id).where(Peer.status != "active")))
            # The first pending message of a conversation that is not ready (backing off or held by another
            # worker) holds back everything after it: order within a conversation is kept.
            blocked: dict[tuple[str, str], int] = {
                (recipient, conv): first
                for recipient, conv, first in session.execute(
                    select(
                        OutboxMessage.recipient, OutboxMessage.conversation_id, func.min(OutboxMessage.seq)
                    )
                    .where(
                        OutboxMessage.status == "pending",
                        or_(OutboxMessage.next_attempt_at > now, OutboxMessage.lease_until > now),
                    )
                    .group_by(OutboxMessage.recipient, OutboxMessage.conversation_id)
                )
            }
            # Decide on ids alone, lease with one UPDATE, then load only what was leased: loading and
            # flushing whole rows one by one cost more than sealing them.
            ready = session.execute(
                select(OutboxMessage.seq, OutboxMessage.recipient, OutboxMessage.conversation_id)
                .where(*_due(now))
                .order_by(OutboxMessage.seq)
                .limit(s.outbox_batch_size * PIPELINE_BATCHES * 2)
            ).all()
            share = self._conversation_share(ready, blocked)
            left_over = False
            taken: dict[str, set[str]] = defaultdict(set)
            chosen: list[int] = []
            per_peer: dict[str, int] = defaultdict(int)
            for seq, recipient, conversation in ready:
                if recipient in open_peers or recipient in inactive:
                    continue
                first_blocked = blocked.get((recipient, conversation))
                if first_blocked is not None and seq > first_blocked:
                    continue
                if conversation not in taken[recipient]:
                    if len(taken[recipient]) >= share[recipient]:
                        left_over = True
                        continue  # left whole to another worker; skipping all of it keeps its order
                    taken[recipient].add(conversation)
                if per_peer[recipient] >= s.outbox_batch_size * PIPELINE_BATCHES:
                    # Later messages of this conversation must wait for this one.
                    blocked.setdefault((recipient, conversation), seq)
                    continue
                per_peer[recipient] += 1
                chosen.append(seq)
            if not chosen:
                return []
            # The conditions are checked again as the lease is taken: between the look above and this
            # statement another worker may have settled a message whose lease had run out (its row locks
            # make PostgreSQL re-read the row), and a settled message must not be sent and settled twice.
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.seq.in_(chosen), OutboxMessage.status == "pending", _unleased(now))
                .values(
                    lease_owner=self.worker_id, lease_until=now + timedelta(seconds=s.outbox_lease_seconds)
                )
            )
            claimed = list(
                session.scalars(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.seq.in_(chosen),
                        OutboxMessage.lease_owner == self.worker_id,
                        OutboxMessage.status == "pending",
                    )
                    .order_by(OutboxMessage.seq)
                    .execution_options(populate_existing=True)
                )
            )
        # Once the leases are committed, or the others would find the same messages still free.
        if left_over and self.on_left_over is not None:
            self.on_left_over()
        return claimed

    def _conversation_share(
        self, ready: Sequence[Row[int, str, str]], blocked: dict[tuple[str, str], int]
    ) -> dict[str, int]:
        """How many conversations one claim may take per peer: its part of those pending for the peer
        (ready, or held by a lease or a backoff), split among this process's workers.

        A claim that took a message from every conversation would block every later message behind its
        lease, and the other workers would find nothing to send to that peer: one batch in flight per
        peer, and the peer idle while each answer travels back. Split by whole conversations, two claims
        run side by side with their own batches in flight, and order within each conversation holds. A
        backlog that fits one batch is not split: one request carries it all."""
        pending: dict[str, set[str]] = defaultdict(set)
        backlog: dict[str, int] = defaultdict(int)
        for _, recipient, conversation in ready:
            pending[recipient].add(conversation)
            backlog[recipient] += 1
        for recipient, conversation in blocked:
            pending[recipient].add(conversation)
        workers = self.settings.outbox_workers
        return {
            recipient: len(convs)
            if backlog[recipient] <= self.settings.outbox_batch_size
            else -(-len(convs) // workers)
            for recipient, convs in pending.items()
        }

    def _bury(self, session: Session, now: datetime) -> int:
        cutoff = now - timedelta(seconds=self.settings.outbox_dead_after_seconds)
        rows = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.status == "pending",
                OutboxMessage.created_at < cutoff,
                _unleased(now),
            )
        ).all()
        for row in rows:
            row.status = "dead"
            handlers.event(
                session,
                conversation_id=row.conversation_id,
                peer=row.recipient,
                direction="out",
                kind="dead",
                message_id=row.message_id,
                message_type=row.message_type,
                summary=f"undelivered after {row.attempts} attempts: {row.last_error or ''}",
            )
            audit.record(
                session,
                Actor(user_id=None, username="system", source="outbox"),
                "federation.message.dead",
                "message",
                row.message_id,
                detail={"recipient": row.recipient, "attempts": row.attempts},
            )
        return len(rows)

    # --- delivering ---------------------------------------------------------------------------------

    def run_once(self) -> RoundResult:
        now = utcnow()
        buried = self.buried
        claimed = self._claim(now)
        result = RoundResult(claimed=len(claimed), dead=self.buried - buried)
        groups: dict[str, list[OutboxMessage]] = defaultdict(list)
        for row in claimed:
            groups[row.recipient].append(row)
        for recipient, rows in groups.items():
            self._deliver(recipient, rows, result)
        return result

    def _deliver(self, recipient: str, rows: list[OutboxMessage], result: RoundResult) -> None:
        """Deliver a claim to one peer as consecutive batches, pipelined: the next batch is sealed, and
        the last one's receipts recorded, while the peer works on the current one, so neither node waits
        for the other. A batch goes out only once the one before it is answered, and a batch that fails
        holds back all after it, so order within a conversation is kept."""
        to = self._peer_context(recipient)
        parts = self._batches(rows)
        lease = timedelta(seconds=self.settings.outbox_lease_seconds)
        lease_end = min((r.lease_until for r in rows if r.lease_until is not None), default=None)
        sealed = self._seal(to, parts[0])
        sending = self._sender.submit(self._post, to, parts[0], sealed)
        for k, part in enumerate(parts):
            following = parts[k + 1] if k + 1 < len(parts) else []
            sealed_next = self._seal(to, following) if following else {}
            answers, error = sending.result()
            to = self._follow_rotation(to, answers)
            if following and error is None:
                sending = self._sender.submit(self._post, to, following, sealed_next)
            later = [r.seq for rest in parts[k + 1 :] for r in rest]
            # Renewed only once half the lease is gone: a claim normally settles well inside it, and a
            # renewal rewrites every later row of the claim (on PostgreSQL, a new version of each).
            renew = bool(later) and (lease_end is None or utcnow() >= lease_end - lease / 2)
            if renew:
                lease_end = utcnow() + lease
            all_ok = self._record(to, part, sealed, answers, error, result, extend=later if renew else None)
            if not all_ok and following:
                unsent = k + 1
                if error is None:
                    # Already on its way: let it land and record what the peer says of it.
                    answers, error = sending.result()
                    self._record(to, following, sealed_next, answers, error, result)
                    unsent += 1
                held = "held back: an earlier batch to this peer was not delivered"
                for rest in parts[unsent:]:
                    self._record(to, rest, {}, {}, held, result, peer_answered=False)
                return
            sealed = sealed_next

    def _batches(self, rows: list[OutboxMessage]) -> list[list[OutboxMessage]]:
        """Consecutive batches of at most ``outbox_batch_size`` envelopes and, by estimate, at most half
        of ``max_batch_bytes`` (a peer's inbox refuses a larger body whole, and peers share the default).
        """
        size, budget = self.settings.outbox_batch_size, self.settings.max_batch_bytes // 2
        parts: list[list[OutboxMessage]] = [[]]
        weight = 0
        for row in rows:
            sealed = int(len(json.dumps(row.payload)) * _SEALED_PER_PAYLOAD_BYTE) + _SEALED_OVERHEAD
            if parts[-1] and (len(parts[-1]) >= size or weight + sealed > budget):
                parts.append([])
                weight = 0
            parts[-1].append(row)
            weight += sealed
        return parts

    def _follow_rotation(self, to: _PeerContext, answers: dict[str, dict[str, Any]]) -> _PeerContext:
        """The peer's keys again, after following its card, when it signed receipts with a key we do not
        know: it rotated, and only its inbox traffic would otherwise teach us the new key, so receipts
        from a peer that never writes back would fail until the messages died. Verification itself stays
        in ``settle.outcome``; a card that does not vouch for the key changes nothing there."""
        unknown = {
            kid
            for item in answers.values()
            if (kid := envelope.receipt_kid(item.get("receipt"))) is not None and kid not in to.sig_keys
        }
        # At most one look per peer a minute: receipts naming made-up keys must not make us fetch a card
        # per batch.
        if not unknown or time.monotonic() < self._card_looked.get(to.node_id, 0.0) + CARD_LOOK_SECONDS:
            return to
        self._card_looked[to.node_id] = time.monotonic()
        try:
            with self.db.transaction() as session:
                moved = peers.refresh_card(
                    session, self.settings, self.client, peers.get_peer(session, to.node_id)
                )
        except (IntegrityFailure, NotFound) as exc:
            log.warning(
                "receipts from %s name unknown keys %s; its card did not help: %s", to.node_id, unknown, exc
            )
            return to
        return self._peer_context(to.node_id) if moved else to

    def _peer_context(self, recipient: str) -> _PeerContext:
        with self.db.transaction(read_only=True) as session:
            peer = session.get_one(Peer, recipient)
            _, signing_key = self.keys.signing_key(session)
            return _PeerContext(
                node_id=recipient,
                base_url=peer.base_url,
                enc_jwk=peers.encryption_jwk(session, recipient),
                sig_keys={
                    k.kid: peers.public_key(k)
                    for k in session.scalars(
                        select(PeerKey).where(PeerKey.peer_id == recipient, PeerKey.use == "sig")
                    )
                },
                signing_key=signing_key,
                own_keys={k.kid: crypto.import_public(k.public_jwk) for k in public_keys(session, "sig")},
            )

    def _seal(self, to: _PeerContext, rows: list[OutboxMessage]) -> dict[str, envelope.SealedEnvelope]:
        # Sealed afresh at every attempt: the creation time stays inside the receiver's freshness window
        # however long a peer was away, and the message id keeps retries idempotent.
        return {
            row.message_id: envelope.seal(
                payload=row.payload,
                sender_node=self.settings.node_id,
                recipient_node=to.node_id,
                message_type=row.message_type,
                conversation_id=row.conversation_id,
                in_reply_to=row.in_reply_to,
                signing_key=to.signing_key,
                recipient_enc_jwk=to.enc_jwk,
                message_id=row.message_id,
            )
            for row in rows
        }

    def _post(
        self, to: _PeerContext, rows: list[OutboxMessage], sealed: dict[str, envelope.SealedEnvelope]
    ) -> tuple[dict[str, dict[str, Any]], str | None]:
        """One batch to the peer's inbox: its receipts by message id, or why there are none."""
        answers: dict[str, dict[str, Any]] = {}
        try:
            body = json.dumps({"envelopes": [sealed[r.message_id].token for r in rows]}).encode()
            content, length = peers.body_once(body)
            del body
            response = self.client.post(
                to.base_url + INBOX_PATH,
                content=content,
                headers={"Content-Type": "application/json", **length},
            )
            if response.status_code != 200:
                return answers, f"HTTP {response.status_code}: {response.text[:200]}"
            data = response.json()
            receipts = data.get("receipts") if isinstance(data, dict) else None
            if not isinstance(receipts, list):
                return answers, "the peer's answer holds no list of receipts"
            for item in receipts:
                if isinstance(item, dict) and isinstance(item.get("message_id"), str):
                    answers[item["message_id"]] = item
        except (httpx.HTTPError, ValueError) as exc:
            return answers, f"{type(exc).__name__}: {exc}"[:400]
        return answers, None

    def _record(
        self,
        to: _PeerContext,
        rows: list[OutboxMessage],
        sealed: dict[str, envelope.SealedEnvelope],
        answers: dict[str, dict[str, Any]],
        error: str | None,
        result: RoundResult,
        *,
        peer_answered: bool = True,
        extend: list[int] | None = None,
    ) -> bool:
        """Settle one batch in one transaction; whether every message of it got a valid receipt.
        ``peer_answered=False`` for a batch never sent, which says nothing of the peer's health;
        ``extend``: the claim's later messages, whose lease is renewed so that no other worker takes
        them while this one is still working through the claim."""
        now = utcnow()
        all_ok = True
        with self.db.transaction() as session:
            # Rows whose lease ran out while we were away belong to another worker now: leave them alone.
            still_mine = select(OutboxMessage.seq).where(
                OutboxMessage.seq.in_([r.seq for r in rows]), OutboxMessage.lease_owner == self.worker_id
            )
            if session.get_bind().dialect.name == "postgresql":
                still_mine = still_mine.with_for_update()
            mine = set(session.scalars(still_mine))
            changes: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            hooks: list[tuple[handlers.ReceiptHook, OutboxMessage, str]] = []
            any_ok = False
            for row in rows:
                if row.seq not in mine:
                    all_ok = False
                    continue
                outcome, values, hook = settle.outcome(
                    events,
                    row,
                    sealed.get(row.message_id),
                    answers.get(row.message_id),
                    settle.Parties(self.settings.node_id, to.node_id, to.sig_keys, to.own_keys),
                    self.settings,
                    error,
                    now,
                )
                changes.append({"seq": row.seq, **values})
                if hook is not None:
                    hooks.append(hook)
                setattr(result, outcome, getattr(result, outcome) + 1)
                any_ok = any_ok or outcome != "failed"
                all_ok = all_ok and outcome != "failed"
            if changes:
                # One executemany per shape of change instead of one UPDATE round trip per message.
                session.execute(update(OutboxMessage), changes)
            if events:
                session.execute(insert(ConversationEvent), events)
            if extend:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.seq.in_(extend), OutboxMessage.lease_owner == self.worker_id)
                    .values(lease_until=now + timedelta(seconds=self.settings.outbox_lease_seconds))
                )
            for fn, row, status in hooks:
                fn(session, row, status)
            if peer_answered:
                self._link(session, to.node_id, any_ok, error, now)
        if peer_answered:
            result.peers[to.node_id] = "ok" if error is None else error
        return all_ok

    def _link(self, session: Session, recipient: str, ok: bool, error: str | None, now: datetime) -> None:
        # Locked: two workers settling batches to one peer at once would otherwise both count from the same
        # number of failures, and the first batch two of them ever settle would collide on creating the row
        # (the loser's receipts lost with its transaction, its messages sent again a lease later).
        link = session.get(PeerLink, recipient, with_for_update=True, populate_existing=True)
        if link is None:
            insert_missing(session, PeerLink, peer_id=recipient, consecutive_failures=0)
            link = session.get_one(PeerLink, recipient, with_for_update=True, populate_existing=True)
        if ok:
            link.consecutive_failures, link.open_until, link.last_success_at = 0, None, now
            return
        link.consecutive_failures += 1
        link.last_error = (error or "")[:500]
        if link.consecutive_failures >= self.settings.breaker_threshold:
            link.open_until = now + timedelta(seconds=self.settings.breaker_cooldown_seconds)
            log.warning(
                "circuit to %s open for %.0f s after %d failures: %s",
                recipient,
                self.settings.breaker_cooldown_seconds,
                link.consecutive_failures,
                error,
            )

    # --- running ------------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"outbox-{self.worker_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._sender.shutdown(wait=True)
        self.client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.run_once()
            except Exception:  # a round that fails must not end delivery; the next round retries
                log.exception("outbox round failed")
                result = RoundResult()
            if result.claimed == 0 or result.failed == result.claimed:
                self._wake.wait(self.settings.outbox_poll_seconds)
                self._wake.clear()


class WorkerPool:
    """Several delivery threads in one process: while one waits for a peer's answer, another seals and
    sends the next batch. Claims keep conversations in order whatever the number of workers."""

    def __init__(self, db: Database, keys: KeyStore, settings: Settings, size: int) -> None:
        self.workers = [OutboxWorker(db, keys, settings, on_left_over=self.wake) for _ in range(size)]

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def wake(self) -> None:
        for w in self.workers:
            w.wake()

    def stop(self, timeout: float = 10) -> None:
        for w in self.workers:
            w.stop(timeout)
