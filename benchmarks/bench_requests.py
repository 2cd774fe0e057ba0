"""Requests: draft validation time (p50/p99) beside a bare pydantic validation of the same values, and N
preservation requests through the whole two-node life cycle (draft to released) between two real node
processes, beside the same number of bare federation notes between the same nodes.

    python -m benchmarks.bench_requests --requests 1000 --db both
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter

from benchmarks.common import NodeProcess, percentile, scratch_database
from cyberpact.accounts import service as accounts
from cyberpact.cases import service as cases
from cyberpact.catalog.service import check_draft, get_catalog
from cyberpact.directory.service import load_seed_if_empty
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database

HEADER = {
    "language": "en",
    "our_reference": "VN-BENCH",
    "request_kind": "new",
    "requesting_authority": "Ministry of Public Security of Viet Nam",
    "contact_name": "Nguyen Van An",
    "contact_email": "an@example.vn",
    "contact_phone": "+84 24 3826 0000",
    "contact_timezone": "Asia/Ho_Chi_Minh",
    "investigating_authority": "A05",
}
FIELDS: dict[str, Any] = {
    "offence": "Illegal access",
    "facts_summary": "x" * 400,
    "data_to_preserve": "mailbox and logs",
    "relationship_to_offence": "used for the ransom",
    "custodian_or_location": "CloudMail, Sydney",
    "necessity": "deleted after 30 days",
    "mla_intended": True,
    "follow_up_mla_planned": (date.today() + timedelta(days=30)).isoformat(),
}


def bench_validation(url: str, runs: int) -> None:
    catalog = get_catalog()
    baseline = TypeAdapter(dict[str, str | bool])
    merged = {**HEADER, **FIELDS}
    pure, with_db, bare = [], [], []
    db = Database(url)
    with db.transaction() as session:
        load_seed_if_empty(session)
    with db.transaction(read_only=True) as session:
        for _ in range(runs):
            t = time.perf_counter()
            check_draft(catalog, "preservation", HEADER, FIELDS, None)
            pure.append(time.perf_counter() - t)
            t = time.perf_counter()
            # What the API does besides: look up the requested State's languages and treaty status.
            check_draft(
                catalog,
                "preservation",
                HEADER,
                FIELDS,
                cases.requested_state(session, "AU", "contact_point_24_7"),
            )
            with_db.append(time.perf_counter() - t)
            t = time.perf_counter()
            baseline.validate_python(merged)
            bare.append(time.perf_counter() - t)
    db.dispose()

    def ms(values: list[float], p: float) -> str:
        return f"{percentile(values, p) * 1000:.3f} ms"

    print(f"  draft validation (catalog only):         p50 {ms(pure, 50)}  p99 {ms(pure, 99)}")
    print(
        f"  draft validation (+ directory lookups):  p50 {ms(with_db, 50)}  p99 {ms(with_db, 99)}"
        "  (target < 5 ms)"
    )
    print(f"  baseline: pydantic dict[str, str|bool]:  p50 {ms(bare, 50)}  p99 {ms(bare, 99)}")


def _people(url: str, prefix: str) -> dict[str, str]:
    db = Database(url)
    tokens = {}
    with db.transaction() as session:
        for name, roles in {
            "admin": ["admin"],
            "officer": ["officer", "contact_point", "central_authority"],
            "supervisor": ["supervisor"],
        }.items():
            user = accounts.create_user(
                session, SYSTEM, username=f"{prefix}-{name}", password="bench password 1", roles=roles
            )
            _, tokens[name] = accounts.issue_token(session, SYSTEM, user, "bench", timedelta(days=1))
    db.dispose()
    return tokens


def _client(node: NodeProcess, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=node.base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        limits=httpx.Limits(max_connections=16),
    )


def _ok(r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 400:
        raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}")
    return dict(r.json())


def _wait_status(client: httpx.Client, ids: list[str], status: str, budget: float) -> None:
    deadline = time.monotonic() + budget
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        page = _ok(client.get("/api/v1/requests", params={"status": status, "limit": 500}))
        pending -= {r["id"] for r in page["items"]}
        cursor = page["next"]
        while cursor and pending:
            page = _ok(
                client.get("/api/v1/requests", params={"status": status, "limit": 500, "cursor": cursor})
            )
            pending -= {r["id"] for r in page["items"]}
            cursor = page["next"]
        if pending:
            time.sleep(0.2)
    if pending:
        raise RuntimeError(f"{len(pending)} requests never reached {status} within {budget:.0f} s")


def bench_lifecycle(kind: str, n: int, threads: int, budget: float) -> None:
    with ExitStack() as stack:
        url_a = stack.enter_context(scratch_database(kind))
        url_b = stack.enter_context(scratch_database(kind))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cyberpact-bench-")))
        a = NodeProcess("vn-24x7", url_a, tmp / "a", "VN")
        stack.callback(a.stop)
        b = NodeProcess("au-24x7", url_b, tmp / "b", "AU")
        stack.callback(b.stop)
        ta, tb = _people(url_a, "vn"), _people(url_b, "au")
        for me, my_tokens, other in ((a, ta, b), (b, tb, a)):
            with (
                _client(me, my_tokens["admin"]) as admin,
                _client(other, (tb if other is b else ta)["admin"]) as oa,
            ):
                fp = _ok(oa.get("/api/v1/federation/node"))["fingerprint"]
                _ok(admin.post("/api/v1/federation/peers", json={"url": other.base_url, "fingerprint": fp}))
        officer_a, super_a, officer_b = (
            _client(a, ta["officer"]),
            _client(a, ta["supervisor"]),
            _client(b, tb["officer"]),
        )
        stack.callback(officer_a.close)
        stack.callback(super_a.close)
        stack.callback(officer_b.close)
        until = (date.today() + timedelta(days=90)).isoformat()

        def draft_and_send(i: int) -> str:
            body = {
                "type": "preservation",
                "case_title": f"bench {i}",
                "counterpart": "au-24x7",
                "header": {**HEADER, "our_reference": f"VN-BENCH-{i}"},
                "fields": FIELDS,
            }
            rid = str(_ok(officer_a.post("/api/v1/requests", json=body))["request"]["id"])
            _ok(officer_a.post(f"/api/v1/requests/{rid}/actions/submit", json={"data": {}}))
            _ok(super_a.post(f"/api/v1/requests/{rid}/actions/approve", json={"data": {}}))
            return rid

        def answer(rid: str) -> None:
            for action, data in (
                ("acknowledge", {"reference": f"AU-{rid[:8]}"}),
                ("preserve", {"preserved_until": until}),
                ("release", {"reason": "MLA request executed"}),
            ):
                _ok(officer_b.post(f"/api/v1/requests/{rid}/actions/{action}", json={"data": data}))

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            ids = list(pool.map(draft_and_send, range(n)))
            sent = time.perf_counter()
            _wait_status(officer_b, ids, "received", budget)
            list(pool.map(answer, ids))
        _wait_status(officer_a, ids, "released", budget)
        total = time.perf_counter() - started
        print(
            f"[{kind}] {n:,} preservation requests draft → released on both sides: {total:.1f} s = "
            f"{n / total:,.1f} requests/s ({n * 9 / total:,.0f} API calls + steps/s; drafting phase "
            f"{sent - started:.1f} s)"
        )

        # Baseline: the same number of bare notes over the same channel, same nodes.
        with _client(a, ta["admin"]) as admin:
            t = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(
                    pool.map(
                        lambda i: _ok(
                            admin.post(
                                "/api/v1/federation/messages",
                                json={"recipient": "au-24x7", "payload": {"text": f"note {i}"}},
                            )
                        ),
                        range(n * 4),
                    )
                )
            deadline = time.monotonic() + budget
            while time.monotonic() < deadline:
                pending = admin.get(
                    "/api/v1/federation/outbox", params={"status": "pending", "limit": 1}
                ).json()
                if not pending:
                    break
                time.sleep(0.2)
            notes = time.perf_counter() - t
        print(
            f"[{kind}]   baseline: {n * 4:,} bare notes (the same number of cross-border messages) in "
            f"{notes:.1f} s = {n * 4 / notes:,.0f} messages/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10_000, help="validation repetitions")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--budget", type=float, default=600, help="seconds allowed per waiting phase")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with scratch_database("sqlite") as url:
        print("draft validation:")
        bench_validation(url, args.runs)
    for kind in kinds:
        bench_lifecycle(kind, args.requests, args.threads, args.budget)


if __name__ == "__main__":
    main()
