"""The human-readable chain-of-custody report of a court bundle (HTML, and PDF through kit.documents)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from cyberpact.kit.documents import render_pdf as _render_pdf

README = """\
cyberpact court bundle for evidence package {package}
Manifest digest (SHA-256 of the RFC 8785 manifest): {digest}

Check it with the cyberpact command, which needs no database and no network:
    cyberpact evidence verify <this-file.zip>

Or by hand:
  1. manifest.jws is a compact JWS (alg Ed25519) by the node that sealed the package; its key is in
     keys/<node>.jwks.json. Compare that key's fingerprint with the one the node's authority gives you.
  2. sha256sum / b2sum of each files/* must equal "sha256" / "blake2b" in the manifest.
  3. custody/head.jws is a signed tree head (size, root) of the node's custody log. Each line of
     custody/events.jsonl is an event ("entry", whose SHA-256 of 0x00||entry is its leaf hash) with an
     RFC 9162 inclusion proof leading to that root (section 2.1.3.2 of RFC 9162 gives the algorithm).
"""

_CSS = """
body { font-family: 'Noto Sans', 'DejaVu Sans', sans-serif; font-size: 10pt; margin: 1.5cm; }
h1 { font-size: 16pt; } h2 { font-size: 12pt; margin-top: 1.2em; border-bottom: 1px solid #888; }
table { border-collapse: collapse; width: 100%; } td, th { border: 1px solid #bbb; padding: 3px 5px;
vertical-align: top; text-align: left; } code { font-size: 8pt; word-break: break-all; }
"""


def _row(*cells: Any) -> str:
    return "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>"


def _events_table(lines: list[dict[str, Any]]) -> str:
    rows = []
    for item in lines:
        e = json.loads(item["entry"])
        detail = ", ".join(f"{k}: {v}" for k, v in (e.get("detail") or {}).items())
        rows.append(_row(e.get("seq"), e.get("at"), e.get("node"), e.get("kind"), e.get("actor"), detail))
    head = "<tr><th>#</th><th>time (UTC)</th><th>node</th><th>event</th><th>by</th><th>details</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def render_html(
    index: dict[str, Any],
    manifest: dict[str, Any],
    events: list[dict[str, Any]],
    head_jws: str,
    origin: dict[str, Any] | None,
    fingerprints: dict[str, list[str]],
) -> str:
    files = "".join(
        _row(f["index"], f["name"], f["size"], f["media_type"], f["sha256"], f["blake2b"])
        for f in manifest["files"]
    )
    acq = "".join(
        _row(
            f["name"],
            *(
                f.get("acquisition", {}).get(k, "")
                for k in ("by", "at", "where", "method", "tool", "tool_version", "authority")
            ),
        )
        for f in manifest["files"]
    )
    keys = "".join(_row(node, ", ".join(kids)) for node, kids in fingerprints.items())
    origin_html = ""
    if origin:
        origin_html = (
            f"<h2>Custody at the origin node ({escape(str(index['origin_node']))})</h2>"
            + _events_table(list(origin.get("events") or []))
        )
    conditions = escape(json.dumps(manifest.get("use_conditions") or {}, ensure_ascii=False))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Chain of custody: {escape(str(manifest.get("title")))}</title><style>{_CSS}</style></head><body>
<h1>Chain of custody — {escape(str(manifest.get("title")))}</h1>
<table>
{_row("Package", index["package_id"])}{_row("Case", manifest.get("case_ref"))}
{_row("Request", manifest.get("request_ref") or "—")}{_row("Sealed by node", manifest.get("node"))}
{_row("Sealed at", manifest.get("sealed_at"))}{_row("Manifest digest (SHA-256)", index["manifest_digest"])}
{_row("Exported by", f"{index['exported_by']} on {index['node']} at {index['exported_at']}")}
{_row("Conditions of use", conditions)}
</table>
<h2>Files</h2><table><tr><th>#</th><th>name</th><th>bytes</th><th>type</th><th>SHA-256</th>
<th>BLAKE2b-512</th></tr>{files}</table>
<h2>Acquisition</h2><table><tr><th>file</th><th>by</th><th>when</th><th>where</th><th>how</th><th>tool</th>
<th>version</th><th>legal authority</th></tr>{acq}</table>
{origin_html}
<h2>Custody at {escape(str(index["node"]))}</h2>{_events_table(events)}
<h2>Signed tree head</h2><p><code>{escape(head_jws)}</code></p>
<h2>Signing keys (RFC 7638 thumbprints)</h2><table>{keys}</table>
<p>Each event above is proven part of the signed custody log by an RFC 9162 inclusion proof in the bundle;
<code>cyberpact evidence verify</code> checks every signature, digest and proof without a database or network.
</p></body></html>"""


def render_pdf(html: str) -> bytes:
    return _render_pdf(html)
