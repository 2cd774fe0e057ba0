"""Court bundles: one ZIP file a court can check with no database, no network and no trust in us.

Layout (all paths fixed; nothing else is accepted by the verifier)::

    bundle.json                 index: format, package, exporting node, member list
    manifest.jws                the signed manifest (compact JWS, Ed25519, RFC 8785 payload)
    files/<index>-<name>        the evidence files, stored uncompressed
    custody/head.jws            the exporting node's signed tree head the proofs lead to
    custody/events.jsonl        this package's custody events, each with an RFC 9162 inclusion proof
    custody/origin-head.jws     for a received package: the origin node's head, and ...
    custody/origin-events.jsonl ... the origin's custody events with proofs against it
    receipts/<transfer>.jws     signed transfer receipts
    keys/<node>.jwks.json       public signing keys; cards/<node>.json the self-signed node cards
    report.html, report.pdf     the chain of custody for people

:func:`verify_bundle` reads the archive in place. It refuses unsafe archives before reading any member
(absolute or parent paths, links, duplicate or unexpected names, sizes that lie, decompression bombs), and
with ``extract_to`` writes the files only after every check passed, only under that directory. The empty
entries an archiver adds for the folders above (``files/``...) when a bundle is unzipped and zipped again
are allowed, and are no member of the bundle.
"""

from __future__ import annotations

import hashlib
import json
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.evidence import chunks, custody, merkle, report, service
from cyberpact.evidence.errors import BundleRejected, ProofError
from cyberpact.evidence.models import EvidencePackage, EvidenceTransfer
from cyberpact.federation import identity
from cyberpact.federation.models import Peer, PeerKey
from cyberpact.kit import crypto
from cyberpact.kit.actor import Actor
from cyberpact.kit.canonical import canonical_json
from cyberpact.kit.errors import Conflict, IntegrityFailure
from cyberpact.kit.keystore import NodeKey
from cyberpact.kit.time import rfc3339, utcnow

FORMAT = "cyberpact-court-bundle/1"
_FIXED = {
    "bundle.json",
    "manifest.jws",
    "custody/head.jws",
    "custody/events.jsonl",
    "report.html",
    "report.pdf",
    "custody/origin-head.jws",
    "custody/origin-events.jsonl",
    "README.txt",
}
_DIRS = ("files/", "keys/", "cards/", "receipts/")
_DIR_ENTRIES = frozenset((*_DIRS, "custody/"))
# What an empty member's compressed bytes take: nothing stored; deflate's final empty block, two bytes.
_EMPTY_STREAM = {zipfile.ZIP_STORED: 0, zipfile.ZIP_DEFLATED: 2}
_MAX_MEMBERS = 10_000
_MAX_META = 256 * 1024 * 1024  # any member that is not an evidence file
_MAX_RATIO = 200  # uncompressed / compressed beyond which a member is treated as a bomb
_READ = 4 * 1024 * 1024


def _file_path(index: int, name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:150] or "file"
    return f"files/{index:04d}-{safe}"


def _jsonl(items: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(i, ensure_ascii=False, separators=(",", ":")) + "\n" for i in items)


def export(
    session: Session,
    ctx: service.Context,
    actor: Actor,
    package: EvidencePackage,
    out: Path,
    progress: Any = None,
) -> Path:
    """Write the bundle of ``package`` to ``out``; records an ``exported`` custody event and signs a head."""
    if package.status not in ("sealed", "received"):
        raise Conflict(f"package {package.id} is {package.status}; only sealed or received packages export")
    manifest = service.signed_manifest(session, package)
    custody.record(session, ctx.node_id, "exported", package.id, actor, to=out.name)
    # Every decrypted byte of the package leaves in the bundle: the widest read there is, so it is in the
    # audit record as well as the custody log.
    audit.record(
        session, actor, "evidence.package.export", "evidence_package", package.id, detail={"to": out.name}
    )
    head = custody.sign_head(session, ctx.keys, ctx.node_id)
    events = custody.events_of(session, str(package.id), head.size)
    proofs = custody.inclusion_proofs(session, [e.seq for e in events], head.size)
    event_lines = [
        {"seq": e.seq, "entry": e.entry, "proof": [custody.b64(p) for p in proofs[e.seq]]} for e in events
    ]
    own_keys = [dict(k.public_jwk) for k in session.scalars(select(NodeKey).where(NodeKey.purpose == "sig"))]
    keys = {ctx.node_id: own_keys}
    cards: dict[str, Any] = {}
    card = identity.current_card(session)
    if card is not None:
        cards[ctx.node_id] = json.loads(card.card)
    transfers = list(
        session.scalars(
            select(EvidenceTransfer).where(
                EvidenceTransfer.package_id == package.id, EvidenceTransfer.receipt.is_not(None)
            )
        )
    )
    for peer_id in {package.origin_node, *(t.peer for t in transfers)} - {ctx.node_id}:
        keys[peer_id] = [
            dict(k.jwk)
            for k in session.scalars(select(PeerKey).where(PeerKey.peer_id == peer_id, PeerKey.use == "sig"))
        ]
        peer = session.get(Peer, peer_id)
        if peer is not None:
            cards[peer_id] = json.loads(peer.card)
    files = service.files_of(session, package)
    key = service.data_key(session, ctx, package)
    index = {
        "format": FORMAT,
        "package_id": str(package.id),
        "origin_package_id": package.origin_package_id,
        "node": ctx.node_id,
        "origin_node": package.origin_node,
        "exported_at": rfc3339(utcnow()),
        "exported_by": actor.username,
        "manifest_digest": package.manifest_digest,
        "files": [{"index": f.index, "path": _file_path(f.index, f.name)} for f in files],
    }
    html = report.render_html(
        index,
        manifest,
        event_lines,
        head.jws,
        package.origin_custody,
        {n: [crypto.thumbprint(k) for k in ks] for n, ks in keys.items()},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        zf.writestr("bundle.json", json.dumps(index, indent=2, ensure_ascii=False))
        zf.writestr("manifest.jws", (package.manifest_jws or "") + "\n")
        zf.writestr("custody/head.jws", head.jws + "\n")
        zf.writestr("custody/events.jsonl", _jsonl(event_lines))
        if package.origin_custody:
            zf.writestr("custody/origin-head.jws", str(package.origin_custody["head"]) + "\n")
            zf.writestr("custody/origin-events.jsonl", _jsonl(list(package.origin_custody["events"])))
        for t in transfers:
            zf.writestr(f"receipts/{t.id}.jws", (t.receipt or "") + "\n")
        for node, jwks in keys.items():
            zf.writestr(f"keys/{node}.jwks.json", json.dumps({"keys": jwks}, indent=2))
        for node, doc in cards.items():
            zf.writestr(f"cards/{node}.json", json.dumps(doc, indent=2))
        zf.writestr("report.html", html)
        zf.writestr("report.pdf", report.render_pdf(html))
        zf.writestr("README.txt", report.README.format(package=package.id, digest=package.manifest_digest))
        for f in files:
            c = service.codec(session, ctx, package, f, key)
            info = zipfile.ZipInfo(_file_path(f.index, f.name), date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = (
                zipfile.ZIP_STORED
            )  # evidence images rarely compress; keep export at I/O speed
            with zf.open(info, "w", force_zip64=True) as dst:
                for piece in chunks.read_chunks(c, ctx.storage, service.key_of(package, f)):
                    dst.write(piece)
                    if progress is not None:
                        progress(len(piece))
    tmp.replace(out)
    return out


# --- verification ---------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class BundleReport:
    checks: list[Check] = field(default_factory=list)
    package_id: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok


def _check_member(info: zipfile.ZipInfo, seen: set[str]) -> bool:
    """Refuse a member that is unsafe or no part of a bundle, naming why; True for a directory entry.

    Unzipping a bundle and zipping the folder again (``zip -r``, a file manager) adds an entry for each
    folder: a name ending in ``/`` and no content. Such entries say nothing about the evidence and are
    passed over, but only for the folders a bundle has and only empty, so that they hide nothing.
    """
    name = info.filename
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name or "\x00" in name:
        raise BundleRejected(f"member {name!r}: absolute or non-portable path", extra={"member": name})
    is_dir = name.endswith("/")
    parts = (name[:-1] if is_dir else name).split("/")
    if ".." in parts or PurePosixPath(name).is_absolute():
        raise BundleRejected(f"member {name!r}: path traversal", extra={"member": name})
    if any(part in ("", ".") for part in parts):
        raise BundleRejected(f"member {name!r}: empty or '.' path segment", extra={"member": name})
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise BundleRejected(f"member {name!r}: symbolic link", extra={"member": name})
    if name in seen:
        raise BundleRejected(f"member {name!r}: appears twice", extra={"member": name})
    if is_dir:
        if name not in _DIR_ENTRIES:
            raise BundleRejected(f"member {name!r}: not part of a court bundle", extra={"member": name})
        # Judged by both sizes: a header can claim no content while its compressed bytes follow it.
        carried = max(info.file_size, info.compress_size - _EMPTY_STREAM.get(info.compress_type, 0))
        if carried > 0:
            raise BundleRejected(
                f"member {name!r}: a directory entry that carries {carried} bytes", extra={"member": name}
            )
        seen.add(name)
        return True
    if info.is_dir() or stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise BundleRejected(f"member {name!r}: not a regular file", extra={"member": name})
    if name not in _FIXED and not (name.startswith(_DIRS) and name.count("/") == 1):
        raise BundleRejected(f"member {name!r}: not part of a court bundle", extra={"member": name})
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BundleRejected(f"member {name!r}: unsupported compression", extra={"member": name})
    if info.compress_size and info.file_size / info.compress_size > _MAX_RATIO and info.file_size > 1 << 20:
        raise BundleRejected(
            f"member {name!r}: compression ratio of a decompression bomb", extra={"member": name}
        )
    seen.add(name)
    return False


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> Iterator[bytes]:
    """A member's bytes, never more than its header declares nor ``limit``: a lying header is a bomb."""
    cap = min(limit, info.file_size)
    if info.file_size > limit:
        raise BundleRejected(
            f"member {info.filename!r}: larger than allowed", extra={"member": info.filename}
        )
    got = 0
    with zf.open(info) as src:
        while True:
            piece = src.read(_READ)
            if not piece:
                break
            got += len(piece)
            if got > cap:
                raise BundleRejected(
                    f"member {info.filename!r}: inflates beyond its declared size",
                    extra={"member": info.filename},
                )
            yield piece


def _read(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str) -> bytes | None:
    info = members.get(name)
    return None if info is None else b"".join(_stream(zf, info, _MAX_META))


def verify_bundle(path: Path, extract_to: Path | None = None) -> BundleReport:
    """Check a bundle offline; every check is reported, each failure names the member and the reason."""
    result = BundleReport()
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleRejected(f"{path.name}: not a readable ZIP archive ({exc})") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise BundleRejected(f"{len(infos)} members: more than a bundle holds")
        seen: set[str] = set()
        folders = [info for info in infos if _check_member(info, seen)]
        members = {i.filename: i for i in infos if i not in folders}
        try:
            _verify(zf, members, result)
        except (zipfile.BadZipFile, zlib.error) as exc:
            raise BundleRejected(f"the archive is damaged: {exc}") from exc
        if extract_to is not None and result.ok:
            _extract(zf, members, extract_to)
    return result


def _keys(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], result: BundleReport) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in members:
        if name.startswith("keys/") and name.endswith(".jwks.json"):
            node = name[len("keys/") : -len(".jwks.json")]
            try:
                jwks = json.loads(_read(zf, members, name) or b"")
                keys = {k["kid"]: crypto.import_public(k) for k in jwks["keys"]}
                for kid, k in keys.items():
                    if crypto.thumbprint(k.as_dict(private=False)) != kid:
                        raise IntegrityFailure(f"key id {kid} is not its key's thumbprint")
                found[node] = keys
                result.add(name, True, f"{len(keys)} signing key(s) of {node}: " + ", ".join(keys))
            except (ValueError, KeyError, TypeError, IntegrityFailure) as exc:
                result.add(name, False, f"unreadable key set: {exc}")
    return found


def _jws(token: bytes | None, keys: dict[str, Any], what: str, result: BundleReport) -> dict[str, Any] | None:
    if token is None:
        result.add(what, False, "missing")
        return None
    text = token.decode("ascii", "replace").strip()
    try:
        kid = str(custody.peek_header(text).get("kid", ""))
        key = keys.get(kid)
        if key is None:
            raise IntegrityFailure(f"signed by key {kid!r}, which the bundle does not include")
        _, payload = crypto.verify_json(text, key)
    except IntegrityFailure as exc:
        result.add(what, False, str(exc))
        return None
    result.add(what, True, f"signature valid (key {kid})")
    return payload if isinstance(payload, dict) else None


def _verify(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], result: BundleReport) -> None:
    try:
        index = json.loads(_read(zf, members, "bundle.json") or b"null")
        assert isinstance(index, dict) and index.get("format") == FORMAT
    except (ValueError, AssertionError):
        raise BundleRejected("bundle.json is missing or not a cyberpact court bundle index") from None
    result.package_id = str(index.get("package_id"))
    keys = _keys(zf, members, result)
    node, origin = str(index.get("node")), str(index.get("origin_node"))
    manifest = _jws(_read(zf, members, "manifest.jws"), keys.get(origin, {}), "manifest.jws", result)
    if manifest is not None:
        digest = hashlib.sha256(canonical_json(manifest)).hexdigest()
        result.add(
            "manifest digest",
            digest == index.get("manifest_digest"),
            f"{digest}"
            if digest == index.get("manifest_digest")
            else f"the manifest hashes to {digest}, the index says {index.get('manifest_digest')}",
        )
        _verify_files(zf, members, manifest, index, result)
    head = _jws(_read(zf, members, "custody/head.jws"), keys.get(node, {}), "custody/head.jws", result)
    pkg = str(index.get("package_id"))
    if head is not None:
        _verify_events(zf, members, "custody/events.jsonl", head, pkg, result)
    if "custody/origin-head.jws" in members:
        ohead = _jws(
            _read(zf, members, "custody/origin-head.jws"),
            keys.get(origin, {}),
            "custody/origin-head.jws",
            result,
        )
        if ohead is not None:
            _verify_events(
                zf, members, "custody/origin-events.jsonl", ohead, str(index.get("origin_package_id")), result
            )
    every_key = {kid: key for ks in keys.values() for kid, key in ks.items()}
    for name in sorted(members):
        if name.startswith("receipts/"):
            _jws(_read(zf, members, name), every_key, name, result)
    for name in ("report.html", "report.pdf"):
        result.add(name, name in members, "present" if name in members else "missing")


def _verify_files(
    zf: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    manifest: dict[str, Any],
    index: dict[str, Any],
    result: BundleReport,
) -> None:
    paths = {int(f["index"]): str(f["path"]) for f in index.get("files") or []}
    listed = {n for n in members if n.startswith("files/")}
    for entry in manifest.get("files") or []:
        name = paths.get(int(entry.get("index", -1)), "")
        what = f"{name or 'file ' + str(entry.get('index'))} ({entry.get('name')})"
        info = members.get(name)
        if info is None:
            result.add(what, False, "missing from the bundle")
            continue
        listed.discard(name)
        sha, blake, size = chunks.hash_stream(_stream(zf, info, int(entry.get("size") or 0)))
        if size != entry.get("size"):
            result.add(what, False, f"{size} bytes, the manifest says {entry.get('size')}")
        elif sha != entry.get("sha256"):
            result.add(what, False, f"SHA-256 {sha} differs from the manifest's {entry.get('sha256')}")
        elif blake != entry.get("blake2b"):
            result.add(what, False, "BLAKE2b differs from the manifest")
        else:
            result.add(what, True, f"{size} bytes, SHA-256 {sha} and BLAKE2b match the signed manifest")
    for extra in sorted(listed):
        result.add(extra, False, "a file the manifest does not list")


def _verify_events(
    zf: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    name: str,
    head: dict[str, Any],
    package_id: str,
    result: BundleReport,
) -> None:
    raw = _read(zf, members, name)
    if raw is None:
        result.add(name, False, "missing")
        return
    try:
        size, root = int(head["size"]), custody.unb64(head["root"], "root")
    except (KeyError, ValueError, ProofError) as exc:
        result.add(name, False, f"the signed head is malformed: {exc}")
        return
    count, last = 0, -1
    for line_no, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        where = f"{name} line {line_no}"
        try:
            item = json.loads(line)
            seq, entry = int(item["seq"]), str(item["entry"])
            proof = [custody.unb64(p, "proof") for p in item["proof"]]
            doc = json.loads(entry)
        except (ValueError, KeyError, TypeError, ProofError) as exc:
            result.add(where, False, f"unreadable event: {exc}")
            continue
        where = f"{where} (event {seq}, {doc.get('kind')})"
        if doc.get("seq") != seq or doc.get("package") != package_id:
            result.add(where, False, "the entry is not the event of this package at this position")
            continue
        if seq <= last:
            result.add(where, False, "events are out of order or repeated")
            continue
        try:
            merkle.verify_inclusion(seq, size, merkle.leaf_hash(entry.encode("utf-8")), proof, root)
        except ProofError as exc:
            result.add(where, False, f"not in the signed log: {exc}")
            continue
        count, last = count + 1, seq
    result.add(
        name,
        count > 0,
        f"{count} events proven included in the signed tree of {size}"
        if count
        else "no custody event could be proven",
    )


def _extract(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], target: Path) -> None:
    root = target.resolve()
    root.mkdir(parents=True, exist_ok=True)
    for name, info in members.items():
        dest = (root / name).resolve()
        if not dest.is_relative_to(root):  # unreachable after _check_member; kept as the last line
            raise BundleRejected(f"member {name!r} would leave the target directory")
        dest.parent.mkdir(parents=True, exist_ok=True)
        limit = info.file_size
        with dest.open("xb") as out:
            for piece in _stream(zf, info, max(limit, 0)):
                out.write(piece)
