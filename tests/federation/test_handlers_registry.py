"""Every way into a node knows every message type, whatever it imported first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cyberpact
from cyberpact.federation import handlers

# Real entry points a node's operators use: the command line, the server's factory, and a script that only
# wants the federation's outbox.
ENTRY_POINTS = ["cyberpact.cli", "cyberpact.app", "cyberpact.federation.outbox"]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_fresh_interpreter_knows_every_type(entry: str) -> None:
    code = (
        f"import json, {entry}\n"
        "from cyberpact.federation import handlers\n"
        "print(json.dumps(handlers.known_types()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    known = json.loads(done.stdout)
    assert {"note", "cp.request", "cp.step", "evidence.offer", "evidence.receipt"} <= set(known)
    assert {"intel.objects", "intel.delete", "intel.pull"} <= set(known)


def test_every_module_that_registers_a_handler_is_listed() -> None:
    # A feature that registers handlers but is missing from FEATURES would be known only to callers that
    # happened to import it.
    root = Path(cyberpact.__file__).parent
    registering = {
        "cyberpact." + ".".join(path.relative_to(root).with_suffix("").parts)
        for path in root.rglob("*.py")
        if "handlers.register(" in (text := path.read_text()) or "handlers.on_receipt(" in text
    }
    assert registering, "the scan found nothing: it no longer matches how handlers are registered"
    assert registering <= set(handlers.FEATURES)
