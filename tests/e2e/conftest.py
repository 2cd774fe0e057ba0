"""A real browser (Debian's Chromium, driven by Playwright) against two live nodes.

Playwright is used with the system's Chromium only (``executable_path``); nothing is downloaded. The
browser runs with networking features that would phone home turned off, so the only traffic is to the
loopback nodes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import DatabaseFactory, LiveNode, federation_node, pin

CHROMIUM = os.environ.get("CYBERPACT_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright import sync_api
    except ImportError:  # a missing dev dependency must fail the run, never skip the browser tests
        pytest.fail(
            "the browser tests need Playwright: pip install -e '.[dev]' (playwright is a dev dependency)"
        )
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make system-deps`")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@dataclass
class Shots:
    """Screenshots of the main pages, named by backend, for people to look at after a run."""

    backend: str
    taken: list[Path] = field(default_factory=list)

    def __call__(self, page: Any, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.backend}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)


@pytest.fixture
def shots(db_factory: DatabaseFactory) -> Shots:
    return Shots(db_factory.kind)


@dataclass
class Nodes:
    a: LiveNode
    b: LiveNode


@pytest.fixture
def nodes(db_factory: DatabaseFactory, tmp_path: Path) -> Iterator[Nodes]:
    # Background workers on: the approved request travels through the real outbox worker.
    a = federation_node(
        db_factory,
        tmp_path,
        "vn-24x7",
        node_country="VN",
        run_background=True,
        evidence_chunk_bytes=64 * 1024,
    )
    b = federation_node(db_factory, tmp_path, "au-24x7", node_country="AU", run_background=True)
    pin(a, b)
    pin(b, a)
    yield Nodes(a, b)
    a.stop()
    b.stop()


def watch_console(page: Any) -> list[str]:
    """Collect console errors (a CSP violation is one): a desk page must produce none."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def csp_violations(errors: list[str]) -> list[str]:
    return [e for e in errors if re.search(r"Content Security Policy|Refused to", e)]
