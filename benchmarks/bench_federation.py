"""Federation between two real node processes on loopback, each figure printed beside its baseline:

* throughput: N queued messages of S bytes (default 10,000 of 2 KB) sealed, delivered, decrypted,
  verified, stored and receipted, the receipt verified and recorded: messages/s from the commit that
  queued them to the last receipt stored (target >= 1,000/s), with the CPU each process used;
* latency from outbox commit to receipt stored under light load (200 messages, one every 20 ms), sent
  through the API (which wakes the worker) and queued straight into the database (which waits for the
  worker's poll, ``CYBERPACT_OUTBOX_POLL_SECONDS``): p50 and p99 (target p99 < 250 ms);
* seal + open of one envelope, as a multiple of a raw Ed25519 sign + verify of the same bytes (and of
  the raw primitives sign-then-encrypt needs), in this process;
* the receiving server's resident memory before a 10 MiB batch (many envelopes in one POST) and at its
  peak while taking it.

Every wait is bounded (``--budget`` seconds a phase); a phase that runs out reports what it did, marked
partial. ``--profile DIR`` samples both node processes with py-spy during the throughput phase and prints
where their time went. Small::

    .venv/bin/python -m benchmarks.bench_federation --messages 2000 --db sqlite
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select

from benchmarks.common import (
    NodeProcess,
    percentile,
    report_profiles,
    scratch_database,
    start_profilers,
)
from cyberpact.accounts import service as accounts
from cyberpact.federation import envelope, outbox, peers
from cyberpact.federation.models import InboxMessage, OutboxMessage
from cyberpact.kit import crypto
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.canonical import canonical_bytes
from cyberpact.kit.db import Database
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.time import utcnow

SENDER, RECEIVER = "bench-sender", "bench-receiver"
TARGET_RATE, TARGET_P99_MS = 1000.0, 250.0
MIB = 1024 * 1024
TICK = os.sysconf("SC_CLK_TCK")


# --- helpers ------------------------------------------------------------------------------------------


def text_of(size: int, i: int, rng: random.Random) -> str:
    """A distinct note of ``size`` ASCII characters that does not compress to nothing."""
    head = f"note {i:07d} "
    return head + base64.b64encode(rng.randbytes(size)).decode()[: max(0, size - len(head))]


def load() -> str:
    """The 1-minute load average: other work on the machine skews every wall-clock figure."""
    return Path("/proc/loadavg").read_text().split()[0]


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL server process on this machine (loopback benchmark: all ours)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    out[int(entry.name)] = cpu_seconds(int(entry.name))
            except OSError:
                continue
    return out


def until(condition: Callable[[], bool], budget: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + budget
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def admin_token(db: Database, name: str) -> str:
    with db.transaction() as session:
        user = accounts.create_user(
            session, SYSTEM, username=name, password="correct horse battery", roles=("admin", "officer")
        )
        _, secret = accounts.issue_token(session, SYSTEM, user, "bench", timedelta(days=1))
    return secret


def pin(a: NodeProcess, a_token: str, b: NodeProcess, b_token: str) -> None:
    with httpx.Client(timeout=30) as c:
        fp = c.get(
            f"{b.base_url}/api/v1/federation/node", headers={"Authorization": f"Bearer {b_token}"}
        ).json()["fingerprint"]
        r = c.post(
            f"{a.base_url}/api/v1/federation/peers",
            json={"url": b.base_url, "fingerprint": fp},
            headers={"Authorization": f"Bearer {a_token}"},
        )
        r.raise_for_status()


@dataclass
class Pair:
    kind: str
    sender: NodeProcess
    receiver: NodeProcess
    sdb: Database
    rdb: Database
    token: str  # an officer of the sending node

    def delivered(self, ids: list[str] | None = None) -> int:
        with self.sdb.transaction(read_only=True) as s:
            query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "delivered")
            if ids is not None:
                query = query.where(OutboxMessage.message_id.in_(ids))
            return int(s.scalar(query) or 0)


# --- seal + open against raw Ed25519 -----------------------------------------------------------------


def bench_crypto(runs: int, size: int, rounds: int = 5) -> None:
    """Each operation runs over the same payloads in ``rounds`` interleaved rounds and keeps its fastest
    round, so load from elsewhere on the machine skews the ratio as little as possible."""
    rng = random.Random(1)
    signing, recipient = crypto.generate_key("Ed25519"), crypto.generate_key("X25519")
    enc_jwk = crypto.public_jwk(recipient)
    sig_public = signing.as_dict(private=False)
    sig_kid = crypto.thumbprint(sig_public)
    verify_key = crypto.import_public(sig_public)
    per_round = max(1, runs // rounds)
    payloads = [{"text": text_of(size, i, rng)} for i in range(per_round)]
    # The baselines sign the same bytes the envelope signs (the RFC 8785 form of the payload), with the
    # library joserfc calls underneath (cryptography).
    bodies = [canonical_bytes(p) for p in payloads]
    raw_private = Ed25519PrivateKey.generate()
    raw_public = raw_private.public_key()
    x_private = X25519PrivateKey.generate()
    x_public = x_private.public_key()
    now = utcnow()
    sealed: list[envelope.SealedEnvelope] = []

    def seal_all() -> None:
        sealed[:] = [
            envelope.seal(
                payload=p,
                sender_node=SENDER,
                recipient_node=RECEIVER,
                message_type="note",
                conversation_id="bench",
                in_reply_to=None,
                signing_key=signing,
                recipient_enc_jwk=enc_jwk,
                created=now,
            )
            for p in payloads
        ]

    def open_all() -> None:
        for env in sealed:
            envelope.open_envelope(
                env.token,
                recipient_node=RECEIVER,
                recipient_keys={enc_jwk["kid"]: recipient},
                sender_keys=lambda node, kid: verify_key if kid == sig_kid else None,
                now=now,
                max_age=timedelta(minutes=10),
                max_skew=timedelta(minutes=1),
                max_bytes=1024 * 1024,
            )

    def raw_all() -> None:
        for body in bodies:
            raw_public.verify(raw_private.sign(body), body)

    def floor_all() -> None:
        # What any sign-then-encrypt design pays at least: sign, an ephemeral X25519 agreement on each side,
        # AES-GCM both ways, verify (no KDF, key wrap, JSON or base64).
        for body in bodies:
            signature = raw_private.sign(body)
            ephemeral = X25519PrivateKey.generate()
            nonce = os.urandom(12)
            box = AESGCM(ephemeral.exchange(x_public)).encrypt(nonce, body + signature, None)
            plain = AESGCM(x_private.exchange(ephemeral.public_key())).decrypt(nonce, box, None)
            raw_public.verify(plain[-64:], plain[:-64])

    best = {name: float("inf") for name in ("seal", "open", "raw", "floor")}
    for _ in range(rounds):
        for name, fn in (("seal", seal_all), ("open", open_all), ("raw", raw_all), ("floor", floor_all)):
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / per_round * 1e6)
    per, raw, floor = best["seal"] + best["open"], best["raw"], best["floor"]
    print(
        f"seal + open, {size} B payload, best of {rounds} rounds of {per_round:,}: {per:.0f} us "
        f"(seal {best['seal']:.0f} + open {best['open']:.0f}) = {per / raw:.1f}x raw Ed25519 sign + verify "
        f"({raw:.0f} us); {per / floor:.1f}x the raw primitives of sign-then-encrypt ({floor:.0f} us: "
        f"Ed25519, 2 X25519, AES-GCM both ways) (load average {load()})",
        flush=True,
    )


# --- throughput ---------------------------------------------------------------------------------------


def bench_throughput(pair: Pair, n: int, size: int, budget: float, profile: Path | None) -> None:
    rng = random.Random(2)
    texts = [text_of(size, i, rng) for i in range(n)]
    t0 = time.perf_counter()
    with pair.sdb.transaction() as s:
        for i, text in enumerate(texts):
            outbox.enqueue(
                s,
                SYSTEM,
                recipient=RECEIVER,
                message_type="note",
                payload={"text": text},
                conversation_id=f"case-{i % 50:02d}",
            )
    committed = datetime.now(UTC)
    enqueue = time.perf_counter() - t0
    pids = {"sender": pair.sender.proc.pid, "receiver": pair.receiver.proc.pid}
    cpu0 = {role: cpu_seconds(pid) for role, pid in pids.items()}
    pg0 = postgres_cpu() if pair.kind == "postgresql" else {}
    wall0, load_before = time.perf_counter(), load()
    spies = start_profilers(pids, profile, pair.kind, budget) if profile else []

    done = until(lambda: pair.delivered() >= n, budget, 0.2)
    wall = time.perf_counter() - wall0
    cpu = {role: cpu_seconds(pid) - cpu0[role] for role, pid in pids.items()}
    if pair.kind == "postgresql":
        cpu["postgres"] = sum(v - pg0.get(pid, 0.0) for pid, v in postgres_cpu().items())
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT, not on SIGTERM
        spy.wait(30)

    with pair.sdb.transaction(read_only=True) as s:
        last = s.scalar(select(func.max(OutboxMessage.delivered_at)))
        delivered = pair.delivered()
        receipts = Counter(s.scalars(select(OutboxMessage.receipt_status)))
    with pair.rdb.transaction(read_only=True) as s:
        stored = int(s.scalar(select(func.count()).select_from(InboxMessage)) or 0)
    took = (last - committed).total_seconds() if last and done else wall
    rate = delivered / took if took > 0 else float("nan")
    verdict = "meets" if rate >= TARGET_RATE and done else "MISSES"
    print(
        f"[{pair.kind}] queue {n:,} x {size} B in one transaction: {enqueue:.1f} s "
        f"= {n / enqueue:,.0f} msg/s",
        flush=True,
    )
    print(
        f"[{pair.kind}] end-to-end: {delivered:,} of {n:,} delivered in {took:.1f} s = {rate:,.0f} msg/s"
        f"{'' if done else ' (partial: budget ran out)'}; target >= {TARGET_RATE:,.0f} msg/s: {verdict}"
        f" (stored by the receiver: {stored:,}; receipts {dict(receipts)})",
        flush=True,
    )
    used = ", ".join(f"{role} {sec:.1f} s ({sec / wall:.0%})" for role, sec in cpu.items())
    print(
        f"[{pair.kind}]   CPU over {wall:.1f} s wall on {os.cpu_count()} cores: {used}; "
        f"{sum(cpu.values()) / wall:.2f} cores busy on average; "
        f"per message {sum(cpu.values()) / max(delivered, 1) * 1e3:.2f} ms of CPU "
        f"(load average {load_before} before, {load()} after)",
        flush=True,
    )
    if profile:
        report_profiles(profile, pair.kind)


# --- latency ------------------------------------------------------------------------------------------


def bench_latency(pair: Pair, n: int, interval: float, budget: float) -> None:
    for how in ("api", "direct"):
        ids: list[str] = []
        start = time.perf_counter()
        with httpx.Client(
            base_url=pair.sender.base_url, headers={"Authorization": f"Bearer {pair.token}"}, timeout=30
        ) as client:
            for i in range(n):
                pause = start + i * interval - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                conversation = f"light-{how}-{i % 10}"
                if how == "api":
                    r = client.post(
                        "/api/v1/federation/messages",
                        json={
                            "recipient": RECEIVER,
                            "payload": {"text": f"ping {i}"},
                            "conversation_id": conversation,
                        },
                    )
                    r.raise_for_status()
                    ids.append(r.json()["message_id"])
                else:
                    with pair.sdb.transaction() as s:
                        row = outbox.enqueue(
                            s,
                            SYSTEM,
                            recipient=RECEIVER,
                            message_type="note",
                            payload={"text": f"ping {i}"},
                            conversation_id=conversation,
                        )
                        ids.append(row.message_id)
        done = until(lambda: pair.delivered(ids) >= n, budget, 0.1)  # noqa: B023 - called right here
        with pair.sdb.transaction(read_only=True) as s:
            rows = s.execute(
                select(OutboxMessage.created_at, OutboxMessage.delivered_at).where(
                    OutboxMessage.message_id.in_(ids), OutboxMessage.delivered_at.is_not(None)
                )
            ).all()
        ms = [(d - c).total_seconds() * 1e3 for c, d in rows if d is not None]
        p99 = percentile(ms, 99)
        label = "API send (wakes the worker)" if how == "api" else "queued in the database (worker polls)"
        verdict = "meets" if p99 < TARGET_P99_MS and done else "MISSES"
        print(
            f"[{pair.kind}] latency commit -> receipt stored, {len(ms)} of {n} messages one every "
            f"{interval * 1e3:.0f} ms, {label}: p50 {percentile(ms, 50):.0f} ms, p99 {p99:.0f} ms, "
            f"max {max(ms, default=float('nan')):.0f} ms; target p99 < {TARGET_P99_MS:.0f} ms: {verdict}"
            f"{'' if done else ' (partial: budget ran out)'}",
            flush=True,
        )


# --- memory -------------------------------------------------------------------------------------------


def seal_batch(pair: Pair, target_bytes: int, count: int) -> list[str]:
    """``count`` envelopes from the sender to the receiver, of about ``target_bytes`` together."""
    keys = KeyStore(pair.sender.env["CYBERPACT_KEY_PASSPHRASE"], 1000)
    with pair.sdb.transaction(read_only=True) as s:
        _, signing = keys.signing_key(s)
        enc_jwk = peers.encryption_jwk(s, RECEIVER)
    rng = random.Random(3)

    def one(size: int, i: int) -> str:
        return envelope.seal(
            payload={"text": text_of(size, i, rng)},
            sender_node=SENDER,
            recipient_node=RECEIVER,
            message_type="note",
            conversation_id=f"batch-{i % 20}",
            in_reply_to=None,
            signing_key=signing,
            recipient_enc_jwk=enc_jwk,
        ).token

    # Envelope length is linear in the payload's: two probes give the payload size that fits the target.
    small, large = len(one(1000, -1)), len(one(5000, -2))
    slope = (large - small) / 4000
    size = max(1, int(1000 + (target_bytes / count - 20 - small) / slope))  # 20: JSON quoting per item
    return [one(size, i) for i in range(count)]


def bench_memory(pair: Pair, mib: float) -> None:
    count = 1000  # the most one batch may carry
    tokens = seal_batch(pair, int(mib * MIB), count)
    body = ('{"envelopes":[' + ",".join(f'"{t}"' for t in tokens) + "]}").encode()
    receiver = pair.receiver
    exact = receiver.reset_peak()
    before = receiver.rss_mb()
    t0 = time.perf_counter()
    r = httpx.post(
        f"{pair.receiver.base_url}{outbox.INBOX_PATH}",
        content=body,
        headers={"content-type": outbox.BATCH_MEDIA_TYPE},
        timeout=600,
    )
    took = time.perf_counter() - t0
    peak, after = receiver.peak_rss_mb(), receiver.rss_mb()
    r.raise_for_status()
    statuses = Counter(item["status"] for item in r.json()["receipts"])
    print(
        f"[{pair.kind}] receiving one batch of {len(tokens):,} envelopes, {len(body) / MIB:.1f} MiB, in "
        f"{took:.1f} s ({dict(statuses)}): receiver RSS before {before:.0f} MiB, peak "
        f"{peak:.0f} MiB (+{peak - before:.0f} MiB = "
        f"{(peak - before) * MIB / len(body):.1f}x the batch), "
        f"after {after:.0f} MiB"
        f"{'' if exact else ' (peak since the process started: VmHWM could not be reset)'}",
        flush=True,
    )


# --- the run ------------------------------------------------------------------------------------------


def run(kind: str, args: argparse.Namespace) -> None:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cyberpact-bench-fed-")))
        s_url = stack.enter_context(scratch_database(kind))
        r_url = stack.enter_context(scratch_database(kind))
        common = {"CYBERPACT_MAX_BATCH_BYTES": str(max(16 * MIB, int(args.batch_mib * MIB * 1.25)))}
        receiver = NodeProcess(RECEIVER, r_url, tmp / "receiver", extra_env=common)
        stack.callback(receiver.stop)
        sender = NodeProcess(SENDER, s_url, tmp / "sender", extra_env=common)
        stack.callback(sender.stop)
        sdb, rdb = Database(s_url), Database(r_url)
        stack.callback(sdb.dispose)
        stack.callback(rdb.dispose)
        s_token, r_token = admin_token(sdb, "bench-s"), admin_token(rdb, "bench-r")
        pin(sender, s_token, receiver, r_token)
        pin(receiver, r_token, sender, s_token)
        pair = Pair(kind, sender, receiver, sdb, rdb, s_token)
        if args.messages:
            bench_throughput(pair, args.messages, args.size, args.budget, args.profile)
        if args.latency_messages:
            bench_latency(pair, args.latency_messages, args.interval_ms / 1e3, args.budget)
        if args.batch_mib:
            bench_memory(pair, args.batch_mib)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000, help="throughput run size (0: skip)")
    parser.add_argument("--size", type=int, default=2048, help="payload bytes of each throughput message")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--latency-messages", type=int, default=200, help="0: skip")
    parser.add_argument("--interval-ms", type=float, default=20)
    parser.add_argument("--batch-mib", type=float, default=10, help="memory run batch size (0: skip)")
    parser.add_argument("--crypto-runs", type=int, default=2000, help="0: skip")
    parser.add_argument("--budget", type=float, default=300, help="seconds each phase may take")
    parser.add_argument("--profile", type=Path, help="write py-spy samples here and print the top frames")
    args = parser.parse_args()
    if args.crypto_runs:
        bench_crypto(args.crypto_runs, args.size)
    for kind in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        run(kind, args)


if __name__ == "__main__":
    main()
