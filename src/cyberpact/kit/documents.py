"""Formal documents: HTML rendered to PDF.

WeasyPrint lays text out with Pango and HarfBuzz, so Arabic is shaped and set right to left and Chinese,
Vietnamese and Cyrillic come out right, provided fonts covering those scripts are installed (the Makefile
installs Noto when fontconfig finds no CJK or Arabic font).
"""

from __future__ import annotations

import logging
import subprocess
from functools import lru_cache

log = logging.getLogger("cyberpact.documents")

# Languages the product prints, with a character fontconfig must find a font for.
SCRIPT_PROBES = {"ar": "ع", "zh": "中", "ru": "Ж", "vi": "ệ", "en": "A", "fr": "é", "es": "ñ"}


def render_pdf(html: str, base_url: str | None = None) -> bytes:
    import weasyprint  # imported late: it loads Pango, which only PDF rendering needs

    return bytes(weasyprint.HTML(string=html, base_url=base_url).write_pdf())


@lru_cache(maxsize=1)
def missing_scripts() -> tuple[str, ...]:
    """Languages for which fontconfig has no font; empty when every script will render."""
    missing = []
    for lang, ch in SCRIPT_PROBES.items():
        try:
            out = subprocess.run(  # noqa: S603 - a fixed program and a number, no user input
                ["fc-list", f":charset={ord(ch):x}", "family"],  # noqa: S607
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return tuple(SCRIPT_PROBES)
        if not out.strip():
            missing.append(lang)
    if missing:
        log.warning("no installed font covers: %s (run `make fonts`)", ", ".join(missing))
    return tuple(missing)
