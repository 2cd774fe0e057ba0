"""Modules that register something (message handlers, job runners) when imported, loaded before the
first lookup: registering as a side effect of whatever a caller happened to import once left
`cyberpact intel import` refusing its own messages, since the command line never imports the API."""

from __future__ import annotations

import importlib
from collections.abc import Iterator


class Features:
    """The named modules, imported once, on the first :meth:`load`. Names, not imports, so that a lower
    layer (the kit) can list the features above it without importing them at its own import."""

    def __init__(self, *modules: str) -> None:
        self.modules = modules
        self._loaded = False

    def __iter__(self) -> Iterator[str]:
        return iter(self.modules)

    def load(self) -> None:
        if not self._loaded:
            # Flagged only once all are in: a second thread meanwhile imports them again, which Python's
            # import lock makes wait for the first and then finds done, instead of seeing a half-filled
            # table.
            for name in self.modules:
                importlib.import_module(name)
            self._loaded = True
