"""The web desk: server time to render the page of a request with 1,000 timeline events (p50, p99; target
p99 < 100 ms), beside the baseline of an almost empty page of the same layout (the preferences page) in
the same run, and the bytes of JavaScript and CSS each page ships.

The app runs in-process (Starlette's test client: no socket, so the figure is the server's own work: the
session lookup, the audited read, the queries and the template). The timeline is written straight into
the database: steps of both sides with free-text details, receipts, and custody events of a package.

    python -m benchmarks.bench_web --events 1000 --runs 300
    python -m benchmarks.bench_web --database postgresql
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import median, percentile, scratch_database
from cyberpact.accounts import mfa
from cyberpact.accounts import service as accounts
from cyberpact.app import create_app
from cyberpact.cases.models import Case, Request, RequestEvent
from cyberpact.config import Settings
from cyberpact.federation.models import ConversationEvent
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database
from cyberpact.web.render import STATIC
from cyberpact.web.security import PLAIN_COOKIE

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
STEPS = [
    ("acknowledge", "remote", {"reference": "AU-PRES-5521"}),
    ("request_info", "remote", {"questions": "Which accounts exactly? Give the period the data cover."}),
    ("provide_info", "local", {"answers": "minh.tran.88@cloudmail.example, 1 Oct to 2 Nov 2026."}),
    ("reminder", "system", {"preserved_until": "2026-12-31", "days_left": 14}),
    ("delivered", "remote", {"receipt": "accepted"}),
]


def build(db: Database) -> tuple[uuid.UUID, uuid.UUID, str]:
    """A user with a live desk session, and one request whose timeline has ``events`` entries."""
    with db.transaction() as session:
        user = accounts.create_user(
            session,
            SYSTEM,
            username="bench",
            password="bench password long",
            roles=["officer", "central_authority", "supervisor"],
        )
        row, secret = mfa.open_session(session, user, None, "bench", mfa.SessionPolicy())
        row.second_factor = True
        case = Case(reference="CASE-BENCH-1", title="Benchmark case", created_by="bench", created_at=START)
        session.add(case)
        session.flush()
        request = Request(
            case_id=case.id,
            direction="outgoing",
            type="preservation",
            status="acknowledged",
            catalog_version="bench",
            counterpart="au-24x7",
            counterpart_country="AU",
            header={"our_reference": "VN-A05-2026-117", "language": "en", "request_kind": "new"},
            fields={"offence": "Illegal access", "facts_summary": "Hospital systems were encrypted." * 5},
            emergency=False,
            confidentiality="none",
            drafted_by="bench",
            created_at=START,
            updated_at=START,
        )
        session.add(request)
        session.flush()
        return case.id, request.id, secret


def fill_timeline(db: Database, request_id: uuid.UUID, events: int) -> None:
    rows: list[dict[str, Any]] = []
    conversation: list[dict[str, Any]] = []
    for i in range(events):
        action, side, detail = STEPS[i % len(STEPS)]
        at = START + timedelta(minutes=7 * i)
        message_id = str(uuid.uuid4())
        rows.append(
            {
                "request_id": request_id,
                "at": at,
                "actor": "peer:au-24x7:kate" if side == "remote" else "bench",
                "side": side,
                "action": action,
                "from_status": "acknowledged",
                "to_status": "acknowledged",
                "detail": detail,
                "message_id": message_id,
            }
        )
        if i % 10 == 0:
            conversation.append(
                {
                    "at": at + timedelta(seconds=2),
                    "conversation_id": str(request_id),
                    "peer": "au-24x7",
                    "direction": "out",
                    "kind": "delivered",
                    "message_id": str(uuid.uuid4()),
                    "message_type": "cp.step",
                    "summary": "receipt from au-24x7 (accepted)",
                }
            )
    with db.transaction() as session:
        session.execute(RequestEvent.__table__.insert(), rows)
        session.execute(ConversationEvent.__table__.insert(), conversation)


def assets_of(html: str) -> list[str]:
    return re.findall(r'<link rel="stylesheet" href="/desk/static/([^"]+)"', html) + re.findall(
        r'<script src="/desk/static/([^"]+)"', html
    )


def time_page(client: Any, path: str, runs: int, warmup: int = 10) -> list[float]:
    for _ in range(warmup):
        assert client.get(path).status_code == 200, path
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
    from starlette.testclient import TestClient

    with scratch_database(args.database) as url, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            env="test",
            secret_key="bench-secret-" + "x" * 32,
            key_passphrase="bench-passphrase-long",
            key_kdf_iterations=1000,
            data_dir=Path(tmp),
            database_url=url,
            node_id="vn-24x7",
            node_country="VN",
        )
        app = create_app(settings, run_background=False)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            db = app.state.db
            case_id, request_id, secret = build(db)
            fill_timeline(db, request_id, args.events)
            client.cookies.set(PLAIN_COOKIE, secret)
            pages = {
                f"request page ({args.events} events)": f"/desk/requests/{request_id}",
                f"case page ({args.events} events)": f"/desk/cases/{case_id}",
                "baseline: preferences page": "/desk/preferences",
            }
            print(f"web desk on {args.database}: {args.runs} renders each after warm-up")
            print(f"{'page':38} {'p50 ms':>8} {'p99 ms':>8} {'HTML KiB':>9}")
            for name, path in pages.items():
                times = time_page(client, path, args.runs)
                size = len(client.get(path).content) / 1024
                print(f"{name:38} {median(times):8.1f} {percentile(times, 99):8.1f} {size:9.1f}")
            print("\nJavaScript and CSS shipped per page (bytes, uncompressed):")
            for path in (
                "/desk",
                "/desk/inbox",
                f"/desk/requests/{request_id}",
                "/desk/new",
                "/desk/evidence",
                "/desk/charts",
                "/desk/directory",
            ):
                html = client.get(path).text
                assets = assets_of(html)
                js = sum((STATIC / a).stat().st_size for a in assets if a.endswith(".js"))
                css = sum((STATIC / a).stat().st_size for a in assets if a.endswith(".css"))
                print(f"  {path[:40]:42} JS {js:6d}  CSS {css:6d}")
            js_page = (STATIC / "upload.js").stat().st_size
            css_all = (STATIC / "desk.css").stat().st_size
            print(f"  evidence package page (the only one with a script): JS {js_page:6d}  CSS {css_all:6d}")


if __name__ == "__main__":
    main()
