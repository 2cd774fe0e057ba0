"""Fixtures shared by the federation tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import DatabaseFactory, LiveNode, federation_node, pin


@pytest.fixture
def pair(db_factory: DatabaseFactory, tmp_path: Path) -> Iterator[tuple[LiveNode, LiveNode]]:
    """Viet Nam's and Australia's 24/7 points of contact, each pinning the other."""
    a = federation_node(db_factory, tmp_path, "vn-24x7", node_country="VN")
    b = federation_node(db_factory, tmp_path, "au-24x7", node_country="AU")
    pin(a, b)
    pin(b, a)
    yield a, b
    a.stop()
    b.stop()
