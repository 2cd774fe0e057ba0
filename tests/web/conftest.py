"""Desk tests run against real nodes over HTTP, on both databases, like every other test."""

from __future__ import annotations

from cases.conftest import two_sides

__all__ = ["two_sides"]
