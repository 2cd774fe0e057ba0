"""Evidence failures, inside the one hierarchy of :mod:`cyberpact.kit.errors`.

Each verifier names *what* failed (a file, a chunk, an event, a head) in ``detail`` and ``extra``, so an
operator or a court reads the exact object, not "verification failed".
"""

from __future__ import annotations

from typing import Any

from cyberpact.kit.errors import Conflict, IntegrityFailure


class ProofError(IntegrityFailure):
    """A Merkle inclusion or consistency proof does not hold."""

    code = "bad_proof"
    title = "Proof does not verify"


class TamperDetected(IntegrityFailure):
    """Stored evidence, a manifest, a custody event or a database row differs from what was signed."""

    code = "tamper_detected"
    title = "Tampering detected"

    def __init__(self, what: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{what}: {detail}", extra={"object": what, **extra})
        self.what = what


class DigestMismatch(IntegrityFailure):
    """Content does not hash to the digest that was declared or signed for it."""

    code = "digest_mismatch"
    title = "Digest mismatch"


class InconsistentTreeHead(IntegrityFailure):
    """A peer presented a tree head that is not an extension of one it signed before."""

    code = "inconsistent_tree_head"
    title = "Inconsistent tree head"


class PackageSealed(Conflict):
    code = "package_sealed"
    title = "Package is sealed"


class BundleRejected(IntegrityFailure):
    """A court bundle is unsafe to read (path traversal, links, a bomb) or not a bundle at all."""

    code = "bundle_rejected"
    title = "Bundle rejected"
