"""What a timeline entry shows of the fields a step carried: words an officer reads, not JSON."""

from __future__ import annotations

from cyberpact.catalog.service import get_catalog
from cyberpact.web.views import _details


def test_a_list_of_references_is_one_per_line_and_a_flag_is_a_word() -> None:
    catalog = get_catalog()
    shown = {
        label: (text, translate)
        for label, text, translate in (
            (d.label, d.text, d.translate_text)
            for d in _details(
                catalog,
                "execute",
                {
                    "evidence_refs": ["3c504178-e6ab-444d-a408-80663bff3c41", "AU-EV-2026-7"],
                    "complete": True,
                    "days_left": 3,
                    "results": "Mailbox content produced",
                },
            )
        )
    }
    assert shown["Evidence references"] == ("3c504178-e6ab-444d-a408-80663bff3c41\nAU-EV-2026-7", False)
    # A flag is a word the desk translates, not JSON's "true".
    assert shown["Complete"] == ("Yes", True)
    assert shown["Days left"] == ("3", False)
    (flag,) = _details(catalog, "execute", {"complete": False})
    assert (flag.text, flag.translate_text) == ("No", True)
    # Anything else structured still shows whole rather than not at all.
    (other,) = _details(catalog, "execute", {"note": {"a": 1}})
    assert other.text == '{"a": 1}'
