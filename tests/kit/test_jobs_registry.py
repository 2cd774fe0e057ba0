"""Every job worker knows every job kind and its lane, whatever its process imported first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cyberpact
from cyberpact.audit.service import CHECK_JOB
from cyberpact.cases.deadlines import REMINDER
from cyberpact.kit import jobs

# A worker can be started from the server's factory, or by a script that imports only the kit.
ENTRY_POINTS = ["cyberpact.app", "cyberpact.kit.jobs", "cyberpact.cli"]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_fresh_interpreter_knows_every_kind_and_its_lane(entry: str) -> None:
    code = f"import json, {entry}\nfrom cyberpact.kit import jobs\nprint(json.dumps(jobs.known_kinds()))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    known = json.loads(done.stdout)
    # The audit chain's walk must be claimed in the long lane: in the short one it would hold the
    # short jobs (deadline reminders) for its whole run.
    assert known[CHECK_JOB] == "long"
    assert known[REMINDER] == "short"


def test_every_module_that_registers_a_runner_is_listed() -> None:
    root = Path(cyberpact.__file__).parent
    registering = {
        "cyberpact." + ".".join(path.relative_to(root).with_suffix("").parts)
        for path in root.rglob("*.py")
        if "jobs.runner(" in (text := path.read_text()) or "jobs.long_runner(" in text
    }
    assert registering, "the scan found nothing: it no longer matches how runners are registered"
    assert registering == set(jobs.FEATURES)
