"""Characters no input may carry, and those no short text (a reference, a name, a number) may carry.

What a person types reaches a database, a peer and a printed document. NUL cannot be stored in
PostgreSQL text at all (the write fails, and a peer's message holding one would be retried for a day);
other C0 controls and lone surrogates have no printed form and no UTF-8 one. In a reference, bidi
overrides and invisible spaces make "VN-<U+202E>gpj.exe" read as "VN-exe.jpg", and "VN<U+200B>-1" look
like "VN-1" while never matching it. The marks that shape real text in Arabic and other scripts (LRM,
RLM, ALM, ZWJ, ZWNJ) stay allowed everywhere.
"""

from __future__ import annotations

import re
from typing import Any

from cyberpact.kit.i18n import Phrase

# C0 controls but tab, line feed and carriage return; DEL; UTF-16 surrogates (only lone ones reach a str).
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# Bidi embeddings, overrides and isolates; zero-width space, word joiner, byte-order mark.
_SPOOFING = re.compile("[\u202a-\u202e\u2066-\u2069\u200b\u2060\ufeff]")


def _name(char: str) -> str:
    return f"U+{ord(char):04X}"


def unsafe(value: str, *, short: bool = False) -> Phrase | None:
    """Why ``value`` may not be kept, or None: ``short`` for references, names and numbers. The words
    follow the name of the field that holds the value ("Reference holds ..."); the desk says them in its
    reader's language, everyone else reads the English."""
    found = _UNSTORABLE.search(value)
    if found:
        # Translators: follows the name of a field; {char} is a code point such as U+0000.
        return Phrase(
            "holds a control character ({char}) that cannot be stored; remove it", char=_name(found[0])
        )
    if short and (found := _SPOOFING.search(value)):
        return Phrase(
            # Translators: follows the name of a field; {char} is a code point such as U+200B.
            "holds an invisible character ({char}) that changes how it reads or makes it look like another; "
            "remove it",
            char=_name(found[0]),
        )
    return None


def first_unsafe(data: Any, path: str = "") -> tuple[str, Phrase] | None:
    """The first string anywhere in ``data`` (JSON-shaped: mappings, lists, scalars) that no input may
    carry, as (path, reason); keys count too. (The JSON parser has bounded the nesting already.)"""
    if isinstance(data, str):
        reason = unsafe(data)
        return (path, reason) if reason else None
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (reason := unsafe(key)):
                return (where, reason)
            if found := first_unsafe(value, where):
                return found
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            if found := first_unsafe(value, f"{path}[{i}]"):
                return found
    return None
