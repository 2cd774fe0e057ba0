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

The bundle ships the keys it is checked against, so a signature alone proves only that the signer held a
key in the bundle. What binds the rest is the exporting node's signed custody log: the manifest must hash
to the digest its events (and receipts) record, a received package's origin head must be the one its
receipt names; and the reader compares each signing key's fingerprint, which verify prints, with the one
the authority published. Every field is type-checked before use, and a member no check read fails.
"""

from __future__ import annotations

import hashlib
import json
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
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
    # node -> speakable fingerprint -> the members that key signed: what the reader compares by phone.
    signers: dict[str, dict[str, list[str]]] = field(default_factory=dict)

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


def _loads(raw: bytes | str) -> Any:
    """JSON from a bundle member; a nesting deep enough to exhaust the parser is malformed like any other."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply") from None


class _Malformed(Exception):
    """A field of a bundle member that is missing or of the wrong type; the message names the field."""


def _get(doc: Any, key: str, kind: type | tuple[type, ...], where: str, *, optional: bool = False) -> Any:
    """``doc[key]`` when it is a ``kind``; anything read from a bundle is checked so before it is used."""
    if not isinstance(doc, dict):
        raise _Malformed(f"{where or 'the document'} is not a JSON object")
    value = doc.get(key)
    label = f"{where}.{key}" if where else key
    if value is None and optional:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int to Python, never to a bundle: index true must not read as file 1.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        if key not in doc:
            raise _Malformed(f"{label} is missing")
        names = " or ".join(
            {int: "an integer", str: "a string", list: "a list", dict: "an object"}[k] for k in kinds
        )
        raise _Malformed(f"{label} is not {names}")
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise _Malformed(f"{label} is negative")
    return value


@dataclass(frozen=True)
class _Index:
    """bundle.json, read field by field: it is unsigned, so every value is checked against a signed one."""

    package_id: str
    origin_package_id: str | None
    node: str
    origin_node: str
    manifest_digest: str
    files: dict[int, str]

    @property
    def received(self) -> bool:
        return self.origin_node != self.node

    @property
    def manifest_package(self) -> str:
        """The id the manifest, the receipts and the origin's custody events use for this package."""
        return self.origin_package_id if self.received and self.origin_package_id else self.package_id


def _index(raw: bytes | None) -> _Index:
    try:
        doc = _loads(raw if raw is not None else b"null")
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleRejected(
            "bundle.json is missing or not a cyberpact court bundle index", extra={"member": "bundle.json"}
        )
    try:
        node, origin = _get(doc, "node", str, ""), _get(doc, "origin_node", str, "")
        if not node or not origin:
            raise _Malformed("node and origin_node must name a node")
        files: dict[int, str] = {}
        for i, f in enumerate(_get(doc, "files", list, "")):
            index, path = _get(f, "index", int, f"files[{i}]"), _get(f, "path", str, f"files[{i}]")
            if index in files:
                raise _Malformed(f"files[{i}].index {index} is listed twice")
            if not path.startswith("files/"):
                raise _Malformed(f"files[{i}].path is not under files/")
            files[index] = path
        found = _Index(
            package_id=_get(doc, "package_id", str, ""),
            origin_package_id=_get(doc, "origin_package_id", str, "", optional=True),
            node=node,
            origin_node=origin,
            manifest_digest=_get(doc, "manifest_digest", str, ""),
            files=files,
        )
        if found.received and not found.origin_package_id:
            raise _Malformed(f"origin_package_id is missing for a package received from {origin}")
    except _Malformed as exc:
        raise BundleRejected(f"bundle.json: {exc}", extra={"member": "bundle.json"}) from None
    return found


class _Archive:
    """The bundle's members, and which of them a check has read: a member no check read fails the bundle."""

    def __init__(self, zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> None:
        self.zf, self.members, self.read_names = zf, members, set[str]()

    def read(self, name: str) -> bytes | None:
        info = self.members.get(name)
        if info is None:
            return None
        self.read_names.add(name)
        return b"".join(_stream(self.zf, info, _MAX_META))

    def named(self, prefix: str) -> list[str]:
        return sorted(n for n in self.members if n.startswith(prefix))


@dataclass
class _Keys:
    """Each node's signing keys as the bundle ships them, and the members each key signed."""

    by_node: dict[str, dict[str, Any]] = field(default_factory=dict)
    jwks: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def owner(self, kid: str) -> str | None:
        return next((node for node, keys in self.by_node.items() if kid in keys), None)


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
            _verify(_Archive(zf, members), result)
        except (zipfile.BadZipFile, zlib.error) as exc:
            raise BundleRejected(f"the archive is damaged: {exc}") from exc
        if extract_to is not None and result.ok:
            _extract(zf, members, extract_to)
    return result


def _keys(archive: _Archive, result: BundleReport) -> _Keys:
    found = _Keys()
    for name in archive.named("keys/"):
        if not name.endswith(".jwks.json") or name == "keys/.jwks.json":
            continue  # no check reads it: reported as unchecked
        node = name[len("keys/") : -len(".jwks.json")]
        try:
            entries = _get(_loads(archive.read(name) or b""), "keys", list, "")
            keys: dict[str, Any] = {}
            jwks: dict[str, dict[str, Any]] = {}
            for i, jwk in enumerate(entries):
                kid = _get(jwk, "kid", str, f"keys[{i}]")
                if _get(jwk, "crv", str, f"keys[{i}]") != "Ed25519":
                    raise _Malformed(f"keys[{i}] is not an Ed25519 signing key")
                keys[kid] = crypto.import_public(jwk)
                if crypto.thumbprint(keys[kid].as_dict(private=False)) != kid:
                    raise _Malformed(f"key id {kid} is not its key's thumbprint")
                jwks[kid] = {k: jwk[k] for k in ("kty", "crv", "x", "kid")}
            if not keys:
                raise _Malformed("no key")
        except (ValueError, IntegrityFailure, _Malformed) as exc:
            result.add(name, False, f"unreadable key set: {exc}")
            continue
        found.by_node[node], found.jwks[node] = keys, jwks
        prints = ", ".join(identity.fingerprint(j) for j in jwks.values())
        result.add(name, True, f"{len(keys)} signing key(s) of {node}, fingerprint {prints}")
    return found


def _cards(archive: _Archive, keys: _Keys, result: BundleReport) -> None:
    """A node card is self-signed, so it proves nothing alone; it must agree with the key set shipped
    for its node, or one of the two was swapped."""
    for name in archive.named("cards/"):
        if not name.endswith(".json") or name == "cards/.json":
            continue
        node = name[len("cards/") : -len(".json")]
        try:
            info = identity.read_card(_loads(archive.read(name) or b""))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, IntegrityFailure) as exc:
            result.add(name, False, f"not a valid self-signed node card: {exc}")
            continue
        sig = info.sig_jwk
        if info.node_id != node:
            result.add(name, False, f"the card is {info.node_id}'s, not {node}'s")
        elif keys.jwks.get(node, {}).get(sig["kid"]) != sig:
            result.add(name, False, f"the card's signing key {sig['kid']} is not in keys/{node}.jwks.json")
        else:
            result.add(name, True, f"self-signed card #{info.seq} of {node}, fingerprint {info.fingerprint}")


def _jws(
    token: bytes | None,
    keys: _Keys,
    signer: str | None,
    what: str,
    result: BundleReport,
    shape: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[str, dict[str, Any]] | None:
    """The verified payload of a compact JWS and the node whose key signed it (``signer``, when given,
    is the only node whose keys count); checked by ``shape``, which raises :class:`_Malformed`."""
    if token is None:
        result.add(what, False, "missing")
        return None
    text = token.decode("ascii", "replace").strip()
    try:
        kid = custody.peek_header(text).get("kid")
        if not isinstance(kid, str):
            raise IntegrityFailure("the signature names no key")
        node = keys.owner(kid) if signer is None else signer
        key = keys.by_node.get(node or "", {}).get(kid)
        if node is None or key is None:
            whose = f"{signer}'s key" if signer else "key"
            raise IntegrityFailure(f"signed by {whose} {kid!r}, which the bundle does not include")
        try:
            _, payload = crypto.verify_json(text, key)
        except RecursionError:
            raise _Malformed("the signed payload is nested too deeply") from None
        if not isinstance(payload, dict):
            raise _Malformed("the signed payload is not a JSON object")
        if shape is not None:
            shape(payload)
    except (IntegrityFailure, _Malformed) as exc:
        result.add(what, False, str(exc))
        return None
    fp = identity.fingerprint(keys.jwks[node][kid])
    result.signers.setdefault(node, {}).setdefault(fp, []).append(what)
    result.add(what, True, f"signature valid ({node}, fingerprint {fp})")
    return node, payload


def _manifest_shape(index: _Index) -> Callable[[dict[str, Any]], None]:
    def check(doc: dict[str, Any]) -> None:
        try:
            canonical_json(doc)
        except ValueError as exc:  # a float or integer RFC 8785 cannot write: no digest exists
            raise _Malformed(f"the manifest has no RFC 8785 form: {exc}") from None
        if _get(doc, "node", str, "") != index.origin_node:
            raise _Malformed(f"the manifest is {doc['node']}'s, bundle.json says {index.origin_node}'s")
        if _get(doc, "package_id", str, "") != index.manifest_package:
            raise _Malformed(f"the manifest is of package {doc['package_id']}, not {index.manifest_package}")
        seen: set[int] = set()
        for i, entry in enumerate(_get(doc, "files", list, "")):
            where = f"files[{i}]"
            n = _get(entry, "index", int, where)
            _get(entry, "name", str, where), _get(entry, "size", int, where)
            _get(entry, "sha256", str, where), _get(entry, "blake2b", str, where)
            if n in seen:
                raise _Malformed(f"{where}.index {n} is listed twice")
            seen.add(n)

    return check


def _head_shape(node: str) -> Callable[[dict[str, Any]], None]:
    def check(doc: dict[str, Any]) -> None:
        if doc.get("typ") != "cyberpact-custody-sth":
            raise _Malformed("not a signed custody tree head")
        if _get(doc, "node", str, "") != node:
            raise _Malformed(f"the head of {doc['node']}'s log, not {node}'s")
        _get(doc, "size", int, ""), _get(doc, "root", str, "")

    return check


def _receipt_shape(doc: dict[str, Any]) -> None:
    if doc.get("typ") != "cyberpact-evidence-receipt":
        raise _Malformed("not a signed evidence receipt")
    for key in ("transfer_id", "sender", "receiver", "package_id", "manifest_digest"):
        _get(doc, key, str, "")
    _get(doc, "sender_head", str, "", optional=True)


@dataclass
class _Statement:
    """A signed record of the manifest digest: the digest it names and where it is."""

    where: str
    digest: str


def _verify(archive: _Archive, result: BundleReport) -> None:
    index = _index(archive.read("bundle.json"))
    result.package_id = index.package_id
    keys = _keys(archive, result)
    _cards(archive, keys, result)
    node, origin = index.node, index.origin_node
    signed = _jws(archive.read("manifest.jws"), keys, origin, "manifest.jws", result, _manifest_shape(index))
    manifest = signed[1] if signed else None
    if manifest is not None:
        _verify_files(archive, manifest, index, result)
    statements: list[_Statement] = []
    head = _jws(archive.read("custody/head.jws"), keys, node, "custody/head.jws", result, _head_shape(node))
    if head is not None:
        statements += _verify_events(archive, "custody/events.jsonl", head[1], node, index.package_id, result)
    origin_head: str | None = None
    if index.received:
        # The custody before the transfer (who seized and sealed what, in the requested State) is what a
        # court asks about: for a received package it is required, not optional.
        raw = archive.read("custody/origin-head.jws")
        ohead = _jws(raw, keys, origin, "custody/origin-head.jws", result, _head_shape(origin))
        if ohead is not None and raw is not None:
            origin_head = raw.decode("ascii", "replace").strip()
            _verify_events(
                archive, "custody/origin-events.jsonl", ohead[1], origin, index.manifest_package, result
            )
    receipts = _verify_receipts(archive, keys, index, origin_head, result)
    if manifest is not None:
        _verify_digest(manifest, index, statements, receipts, result)
    for name in ("report.html", "report.pdf"):
        result.add(
            name,
            archive.read(name) is not None,
            "present: a rendering for people; the checks above are the proof"
            if name in archive.members
            else "missing",
        )
    readme = archive.read("README.txt")
    if readme is not None:
        text = readme.decode("utf-8", "replace")
        says = index.package_id in text and index.manifest_digest in text
        result.add(
            "README.txt",
            says,
            "names the package and manifest digest of bundle.json"
            if says
            else "does not name the package and manifest digest of bundle.json",
        )
    for name in sorted(set(archive.members) - archive.read_names - set(index.files.values())):
        if not name.startswith("files/"):
            # A member no check read must not ride along in a bundle declared verified.
            result.add(name, False, "not checked: no verified member vouches for it")


def _verify_receipts(
    archive: _Archive, keys: _Keys, index: _Index, origin_head: str | None, result: BundleReport
) -> list[_Statement]:
    """Receipts of this package's transfers, each signed by the node that received the package."""
    found: list[_Statement] = []
    for name in archive.named("receipts/"):
        signed = _jws(archive.read(name), keys, None, name, result, _receipt_shape)
        if signed is None:
            continue
        signer, doc = signed
        failure = None
        if doc["receiver"] != signer:
            failure = f"signed by {signer}, but the receipt is {doc['receiver']}'s"
        elif index.node not in (doc["sender"], doc["receiver"]):
            failure = f"a transfer between {doc['sender']} and {doc['receiver']}, not of {index.node}"
        elif doc["package_id"] != index.manifest_package:
            failure = f"a receipt for package {doc['package_id']}, not {index.manifest_package}"
        elif name != f"receipts/{doc['transfer_id']}.jws":
            failure = f"the receipt of transfer {doc['transfer_id']}, filed under another name"
        elif index.received and doc["receiver"] == index.node and doc["sender_head"] != origin_head:
            # The receiving node signed the head the origin gave it: a swapped origin head differs.
            failure = "names another head of the origin's log than custody/origin-head.jws"
        if failure is not None:
            result.checks[-1] = Check(name, False, failure)
            continue
        found.append(_Statement(f"{name} (signed by {signer})", doc["manifest_digest"]))
    return found


def _verify_digest(
    manifest: dict[str, Any],
    index: _Index,
    statements: list[_Statement],
    receipts: list[_Statement],
    result: BundleReport,
) -> None:
    """The manifest must be the one the exporting node recorded in its signed custody log: the manifest and
    the origin's head are signed by keys the bundle itself ships, the exporting node's events are not
    forged without its key, whose fingerprint the reader checks."""
    digest = hashlib.sha256(canonical_json(manifest)).hexdigest()
    named = [_Statement("bundle.json", index.manifest_digest), *statements, *receipts]
    wrong = [s for s in named if s.digest != digest]
    if wrong:
        result.add(
            "manifest digest",
            False,
            f"the manifest hashes to {digest}; "
            + "; ".join(f"{s.where} records {s.digest}" for s in wrong[:3]),
        )
    elif not statements:
        result.add(
            "manifest digest",
            False,
            f"no custody event of {index.node} proven in custody/events.jsonl records the manifest digest",
        )
    else:
        result.add(
            "manifest digest",
            True,
            f"{digest}, as recorded by {len(statements)} signed custody event(s) of {index.node}"
            + (f" and {len(receipts)} signed receipt(s)" if receipts else ""),
        )


def _verify_files(archive: _Archive, manifest: dict[str, Any], index: _Index, result: BundleReport) -> None:
    listed = set(archive.named("files/"))
    for entry in manifest["files"]:
        name = index.files.get(entry["index"], "")
        what = f"{name or 'file ' + str(entry['index'])} ({entry['name']})"
        info = archive.members.get(name)
        if info is None:
            result.add(what, False, "missing from the bundle")
            continue
        listed.discard(name)
        sha, blake, size = chunks.hash_stream(_stream(archive.zf, info, entry["size"]))
        if size != entry["size"]:
            result.add(what, False, f"{size} bytes, the manifest says {entry['size']}")
        elif sha != entry["sha256"]:
            result.add(what, False, f"SHA-256 {sha} differs from the manifest's {entry['sha256']}")
        elif blake != entry["blake2b"]:
            result.add(what, False, "BLAKE2b differs from the manifest")
        else:
            result.add(what, True, f"{size} bytes, SHA-256 {sha} and BLAKE2b match the signed manifest")
    for extra in sorted(listed):
        result.add(extra, False, "a file the manifest does not list")


def _verify_events(
    archive: _Archive,
    name: str,
    head: dict[str, Any],
    node: str,
    package_id: str,
    result: BundleReport,
) -> list[_Statement]:
    """Check each event's inclusion proof; the manifest digests the proven events record."""
    raw = archive.read(name)
    if raw is None:
        result.add(name, False, "missing")
        return []
    try:
        size, root = head["size"], custody.unb64(head["root"], "root")
    except ProofError as exc:
        result.add(name, False, f"the signed head is malformed: {exc}")
        return []
    count, last = 0, -1
    digests: list[_Statement] = []
    for line_no, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        where = f"{name} line {line_no}"
        try:
            item = _loads(line)
            seq, entry = _get(item, "seq", int, ""), _get(item, "entry", str, "")
            proof = [custody.unb64(p, "proof") for p in _get(item, "proof", list, "")]
            doc = _loads(entry)
            kind = _get(doc, "kind", str, "entry")
            detail = _get(doc, "detail", dict, "entry", optional=True) or {}
            recorded = _get(detail, "manifest_digest", str, "entry.detail", optional=True)
        except (ValueError, ProofError, _Malformed) as exc:
            result.add(where, False, f"unreadable event: {exc}")
            continue
        where = f"{where} (event {seq}, {kind})"
        if doc.get("seq") != seq or doc.get("package") != package_id or doc.get("node") != node:
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
        if recorded is not None:
            digests.append(_Statement(where, recorded))
    result.add(
        name,
        count > 0,
        f"{count} events proven included in the signed tree of {size}"
        if count
        else "no custody event could be proven",
    )
    return digests


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
