"""Catalog fields as HTML form controls, and posted forms back into the values the services check.

A control is named after the path the catalog check reports problems under (``header.language``,
``fields.offence``, ``data.reasons``), so every problem lands beside the control it is about. Nothing is
validated here beyond turning text into the catalog's types: the services decide what is acceptable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cyberpact.catalog.schemas import FieldDef
from cyberpact.catalog.service import Catalog
from cyberpact.kit.errors import Problem
from cyberpact.web.security import Posted


@dataclass(frozen=True)
class Option:
    value: str
    label: str  # English label (translated by the template) or the value itself
    translate: bool
    checked: bool = False


@dataclass(frozen=True)
class Control:
    """One catalog field ready for the form macro."""

    name: str  # header.x, fields.x or data.x
    id: str
    label: str
    help: str | None
    cite: str
    widget: str  # text, textarea, email, tel, date, number, checkbox, select, checkboxes, lines
    required: bool
    value: str
    checked: bool
    options: tuple[Option, ...]
    problems: tuple[Problem, ...]
    minimum: int | None = None
    maximum: int | None = None


_WIDGETS = {
    "text": "text",
    "longtext": "textarea",
    "email": "email",
    "phone": "tel",
    "timezone": "text",
    "language": "text",
    "date": "date",
    "integer": "number",
    "boolean": "checkbox",
    "enum": "select",
    "list": "lines",
    "grounds": "checkboxes",
}


def _options(catalog: Catalog, f: FieldDef, current: Any, grounds: Sequence[str]) -> tuple[Option, ...]:
    from cyberpact.cases.document import option_label

    if f.type == "grounds":
        chosen = set(current) if isinstance(current, list) else set()
        by_id = {g.id: g for g in catalog.head.grounds}
        return tuple(Option(g, by_id[g].label, True, g in chosen) for g in grounds if g in by_id)
    if f.type != "enum":
        return ()
    out = []
    for value in catalog.options(f):
        label = option_label(catalog, f, value)
        out.append(Option(value, label or value, label is not None, value == current))
    return tuple(out)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if isinstance(value, bool):
        return ""
    return str(value)


def controls(
    catalog: Catalog,
    defs: Iterable[FieldDef],
    prefix: str,
    values: dict[str, Any],
    problems: Iterable[Problem] = (),
    grounds: Sequence[str] = (),
) -> list[Control]:
    by_field: dict[str, list[Problem]] = {}
    for p in problems:
        by_field.setdefault(p.field, []).append(p)
    out = []
    for f in defs:
        name = f"{prefix}.{f.name}"
        current = values.get(f.name)
        out.append(
            Control(
                name=name,
                id="f-" + name.replace(".", "-"),
                label=f.label or f.name,
                help=f.help,
                cite=f.cite,
                widget=_WIDGETS.get(f.type, "text"),
                required=f.required,
                value=_text(current),
                checked=current is True,
                options=_options(catalog, f, current, grounds),
                problems=tuple(by_field.get(name, ())),
                minimum=f.min,
                maximum=f.max,
            )
        )
    return out


def read(
    form: Posted, defs: Iterable[FieldDef], prefix: str, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The values of ``defs`` in ``form``, merged over ``base``: an emptied control removes its value.

    Text that does not parse as the field's type is passed on as text, so that the catalog check refuses
    it with its own message and article rather than this layer guessing.
    """
    values = dict(base or {})
    for f in defs:
        name = f"{prefix}.{f.name}"
        if f.type == "boolean":
            if form.get(name):
                values[f.name] = True
            else:
                values.pop(f.name, None)
            continue
        if f.type == "grounds":
            chosen = [g for g in form.all(name) if g]
            if chosen:
                values[f.name] = chosen
            else:
                values.pop(f.name, None)
            continue
        # Never cut: an over-long value reaches the catalog check whole and is refused with its limit.
        raw = form.get(name).strip()
        if not raw:
            values.pop(f.name, None)
            continue
        if f.type == "list":
            values[f.name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif f.type == "integer":
            try:
                values[f.name] = int(raw)
            except ValueError:
                values[f.name] = raw
        else:
            values[f.name] = raw
    return values
