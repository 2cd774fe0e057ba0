"""cyberpact: a node for cooperation under the UN Convention against Cybercrime."""

import sys

__version__ = "0.1.0"

# httpx loads its own command-line client whenever click, rich and pygments are installed (they are: our
# CLI uses Typer and Rich), and that client imports Pygments' lexer tables: about 9 MB in every node
# process for a program we never run. A ``None`` entry makes that optional import fail, and httpx then
# falls back exactly as it does when those packages are absent.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
