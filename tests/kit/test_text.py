"""What no input may carry (``kit.text``): refused with a reason, never stored."""

from __future__ import annotations

import pytest

from cyberpact.kit.text import first_unsafe, unsafe


@pytest.mark.parametrize(
    "value",
    ["abc\x00def", "\x07bell", "esc\x1b[31m", "del\x7f", "lone \ud800 surrogate", "\x0bvertical tab"],
)
def test_characters_that_cannot_be_stored_are_refused_everywhere(value: str) -> None:
    for short in (False, True):
        reason = unsafe(value, short=short)
        assert reason is not None and "cannot be stored" in reason


@pytest.mark.parametrize(
    "value", ["VN-\u202egpj.exe", "VN\u200b-1", "\ufeffVN-1", "a\u2066b\u2069", "x\u2060y"]
)
def test_spoofing_characters_are_refused_in_short_text_only(value: str) -> None:
    reason = unsafe(value, short=True)
    assert reason is not None and "U+" in reason and "invisible" in reason
    assert unsafe(value) is None  # a narrative may quote them


@pytest.mark.parametrize(
    "value",
    [
        "Line one\nline two\r\n\ttabbed",
        "محمد\u200f 42",  # a right-to-left mark beside digits in an Arabic name
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian: a zero-width non-joiner inside a word
        "Nguyễn Văn An",
        "王小明",
    ],
)
def test_real_text_in_any_script_is_kept(value: str) -> None:
    assert unsafe(value, short=True) is None and unsafe(value) is None


def test_the_first_bad_string_is_named_by_its_path() -> None:
    body = {"header": {"our_reference": "VN-1"}, "fields": {"items": ["ok", {"note": "a\x00b"}]}}
    path, reason = first_unsafe(body) or ("", "")
    assert path == "fields.items[1].note" and "U+0000" in reason
    assert first_unsafe({"ke\x00y": 1}) == ("ke\x00y", unsafe("ke\x00y"))
    assert first_unsafe({"a": [1, 2.5, None, True, "fine"]}) is None
