"""STIX 2.1 patterns: a fast recogniser for the common shapes, the OASIS validator for everything else.

The OASIS ``stix2-patterns`` validator (an ANTLR parser) checks about 5,000 patterns a second, which alone
would cap ingest below the node's target. Almost every indicator in practice is one observation of a few
comparisons joined by AND/OR (``[ipv4-addr:value = '198.51.100.7']``), so those are recognised here with a
regular expression that accepts a strict subset of the grammar, and only that subset: whatever it does not
accept goes to the OASIS validator, which alone may reject. The fast path can therefore never reject a
valid pattern, and a test holds that it accepts nothing the OASIS validator refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Tokens as the STIX pattern grammar defines them, restricted where the grammar is subtle: no whitespace
# inside an object path, no float/binary/hex/timestamp literals, no NOT, no qualifiers.
_STRING = r"'(?:[^'\\]|\\['\\])*'"
_INT = r"[+-]?(?:0|[1-9][0-9]*)"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TYPE = r"[A-Za-z_][A-Za-z0-9_-]*"
_INDEX = r"\[(?:0|[1-9][0-9]*|\*)\]"
_STEP = rf"(?:\.(?:{_IDENT}|{_STRING})|{_INDEX})"
# Only the blanks the grammar's lexer skips: Python's \s also matches Unicode spaces, which it does not.
_WS = r"[ \t\r\n]*"
_PATH = rf"(?P<path>(?P<type>{_TYPE}):(?:{_IDENT}|{_STRING}){_STEP}*)"
_COMPARISON = re.compile(
    rf"{_WS}{_PATH}{_WS}(?P<op>=|!=|<=|>=|<|>|(?<=[ \t\r\n])(?:LIKE|MATCHES)(?=[ \t\r\n]))"
    rf"{_WS}(?P<value>{_STRING}|{_INT}){_WS}"
)
_JOIN = re.compile(r"(?:AND|OR)(?=[ \t\r\n])")
_OBS_JOIN = re.compile(rf"(?:AND|OR){_WS}")
_PATH_PART = re.compile(rf"{_IDENT}|{_STRING}|{_INDEX}")

# Identifiers that the grammar's lexer would read as keywords; a path using one goes to the full parser.
_KEYWORDS = frozenset(
    [
        "and",
        "or",
        "not",
        "followedby",
        "like",
        "matches",
        "issuperset",
        "issubset",
        "exists",
        "last",
        "in",
        "start",
        "stop",
        "seconds",
        "true",
        "false",
        "within",
        "repeats",
        "times",
    ]
)
_HASHES = {
    "MD5": r"[a-fA-F0-9]{32}",
    "RIPEMD160": r"[a-fA-F0-9]{40}",
    "SHA1": r"[a-fA-F0-9]{40}",
    "SHA224": r"[a-fA-F0-9]{56}",
    "SHA256": r"[a-fA-F0-9]{64}",
    "SHA384": r"[a-fA-F0-9]{96}",
    "SHA512": r"[a-fA-F0-9]{128}",
    "SHA3224": r"[a-fA-F0-9]{56}",
    "SHA3256": r"[a-fA-F0-9]{64}",
    "SHA3384": r"[a-fA-F0-9]{96}",
    "SHA3512": r"[a-fA-F0-9]{128}",
    "SSDEEP": r"[a-zA-Z0-9/+:.]{1,128}",
    "WHIRLPOOL": r"[a-fA-F0-9]{128}",
}
_HASH_RE = {k: re.compile(v) for k, v in _HASHES.items()}


@dataclass(frozen=True, slots=True)
class Comparison:
    object_type: str
    path: tuple[str, ...]  # property steps after the colon, quotes removed
    op: str
    value: str | int


def _unquote(token: str) -> str:
    return token[1:-1].replace("\\'", "'").replace("\\\\", "\\")


def _split_path(path: str) -> tuple[str, tuple[str, ...]]:
    obj_type, _, rest = path.partition(":")
    steps = tuple(_unquote(p) if p.startswith("'") else p for p in _PATH_PART.findall(rest))
    return obj_type, steps


def _observation(body: str) -> list[Comparison] | None:
    """Comparisons of one ``[...]`` body joined by AND/OR, or None when outside the fast subset."""
    out: list[Comparison] = []
    pos = 0
    while True:
        m = _COMPARISON.match(body, pos)
        if m is None:
            return None
        obj_type, steps = _split_path(m.group("path"))
        if obj_type.lower() in _KEYWORDS or any(s.lower() in _KEYWORDS for s in steps):
            return None
        raw = m.group("value")
        value: str | int = _unquote(raw) if raw.startswith("'") else int(raw)
        op = m.group("op")
        if op in ("LIKE", "MATCHES") and not isinstance(value, str):
            return None
        if "hashes" in steps and not _hash_ok(steps[-1], raw):
            return None
        out.append(Comparison(obj_type, steps, op, value))
        pos = m.end()
        if pos == len(body):
            return out
        j = _JOIN.match(body, pos)
        if j is None:
            return None
        pos = j.end()


def _hash_ok(selector: str, raw_value: str) -> bool:
    # Mirrors the OASIS validator's hash check, which compares the literal with its quotes stripped;
    # anything it might treat differently (an index, an escape) is left to it.
    if selector == "[*]":
        return True
    if selector.startswith("[") or "\\" in raw_value:
        return False
    rule = _HASH_RE.get(selector.upper().replace("-", "").replace("'", ""))
    return rule is None or rule.fullmatch(raw_value.replace("'", "")) is not None


@lru_cache(maxsize=4096)
def fast_parse(pattern: str) -> tuple[Comparison, ...] | None:
    """The comparisons of a pattern in the fast subset (observations joined by AND/OR), else None."""
    out: list[Comparison] = []
    pos, end = 0, len(pattern)
    while True:
        while pos < end and pattern[pos] in " \t\r\n":
            pos += 1
        if pos >= end or pattern[pos] != "[":
            return None
        close = _closing_bracket(pattern, pos)
        if close < 0:
            return None
        found = _observation(pattern[pos + 1 : close])
        if found is None:
            return None
        out.extend(found)
        pos = close + 1
        while pos < end and pattern[pos] in " \t\r\n":
            pos += 1
        if pos == end:
            return tuple(out)
        j = _OBS_JOIN.match(pattern, pos)
        if j is None or pos == 0 or pattern[pos - 1] not in " \t\r\n]":
            return None
        pos = j.end()


def _closing_bracket(text: str, start: int) -> int:
    """Index of the ``]`` closing the observation opened at ``start``, skipping string literals and
    path indexes; -1 when there is none."""
    # Jumps from bracket to bracket (and over whole literals) with the regex engine instead of a Python
    # step per character: a third of the pattern work of a typical envelope went to that loop.
    depth = 0
    i = start
    while True:
        m = _BRACKET_OR_QUOTE.search(text, i)
        if m is None:
            return -1
        i = m.end()
        c = m.group()
        if c == "'":
            literal = _LITERAL_REST.match(text, i)
            if literal is None:  # an unterminated literal, or one ending in a lone backslash
                return -1
            i = literal.end()
        elif c == "[":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.start()


_BRACKET_OR_QUOTE = re.compile(r"[\[\]']")
# The rest of a literal after its opening quote: any character but a quote, a backslash escaping any
# character (the grammar's own escapes are checked later, by _COMPARISON), then the closing quote.
_LITERAL_REST = re.compile(r"(?:[^'\\]|\\.)*'", re.DOTALL)


def validate(pattern: str) -> str | None:
    """None when ``pattern`` is a valid STIX 2.1 pattern, else the reason."""
    if fast_parse(pattern) is not None:
        return None
    return _oasis(pattern)


@lru_cache(maxsize=1024)
def _oasis(pattern: str) -> str | None:
    from stix2patterns.validator import run_validator  # type: ignore[import-untyped]

    errors = run_validator(pattern, stix_version="2.1")
    return "; ".join(str(e) for e in errors) if errors else None


def equality_observables(pattern: str) -> list[tuple[str, str]]:
    """``(kind, value)`` for each ``type:path = 'literal'`` comparison of a fast-subset pattern.

    The kind names the path (``ipv4-addr:value``, ``file:hashes.SHA-256``); only equality comparisons on
    strings count, since a range or a regular expression names no single observable.
    """
    parsed = fast_parse(pattern)
    if not parsed:
        return []
    out = []
    for c in parsed:
        if c.op == "=" and isinstance(c.value, str) and c.path and "[*]" not in c.path:
            steps = "".join(step if step.startswith("[") else f".{step}" for step in c.path)
            out.append((f"{c.object_type}:{steps[1:]}", c.value))
    return out
