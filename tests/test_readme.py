"""The README is the operator's manual: it opens with the two commands and documents every setting."""

from __future__ import annotations

from pathlib import Path

from cyberpact.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands() -> None:
    head = README[: README.index("## Configuration")]
    assert "make demo" in head and "make test" in head


def test_every_setting_is_documented() -> None:
    missing = [
        f"CYBERPACT_{name.upper()}"
        for name in Settings.model_fields
        if f"`CYBERPACT_{name.upper()}`" not in README
    ]
    assert missing == [], f"document these settings in README.md: {missing}"
