"""Merkle tree hashing, proofs and their verification per RFC 9162 section 2.1 (the RFC 6962 tree).

Pure functions, no database. A tree is reached through ``get(level, index)``: the hash of the *perfect*
subtree of ``2**level`` leaves starting at leaf ``index * 2**level``. Every subtree a proof needs is either
such a perfect subtree or, on the right edge of the tree, a short chain of them, so a proof touches
O(log n) stored nodes whatever the tree's size; :func:`needed_nodes` lists them so a store can fetch them
all in one query before the proof is computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from cyberpact.evidence.errors import ProofError

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeGetter = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def subtree_hash(lo: int, hi: int, get: NodeGetter) -> bytes:
    """MTH(D[lo:hi]) for a subtree that occurs in some RFC 9162 tree (``lo`` aligned as the tree makes it)."""
    n = hi - lo
    if _is_pow2(n):
        level = n.bit_length() - 1
        return get(level, lo >> level)
    k = _split(n)
    return node_hash(subtree_hash(lo, lo + k, get), subtree_hash(lo + k, hi, get))


def root(size: int, get: NodeGetter) -> bytes:
    return EMPTY_ROOT if size == 0 else subtree_hash(0, size, get)


def inclusion_proof(index: int, size: int, get: NodeGetter) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(subtree_hash(lo + k, hi, get))
            hi = lo + k
        else:
            path.append(subtree_hash(lo, lo + k, get))
            lo = lo + k
    path.reverse()
    return path


def consistency_proof(first: int, second: int, get: NodeGetter) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 9162 section 2.1.4.1 (SUBPROOF with b = true)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    proof: list[bytes] = []
    m, lo, hi, complete = first, 0, second, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(subtree_hash(lo + k, hi, get))
            hi = lo + k
        else:
            proof.append(subtree_hash(lo, lo + k, get))
            m, lo, complete = m - k, lo + k, False
    if not complete:
        proof.append(subtree_hash(lo, hi, get))
    proof.reverse()
    return proof


def needed_nodes(compute: Callable[[NodeGetter], object]) -> set[tuple[int, int]]:
    """The (level, index) pairs ``compute`` reads, found by a dry run on placeholder hashes."""
    seen: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        seen.add((level, index))
        return EMPTY_ROOT

    compute(record)
    return seen


def append_nodes(index: int, leaf: bytes, get: NodeGetter) -> list[tuple[int, int, bytes]]:
    """The perfect subtrees completed by appending ``leaf`` as leaf ``index``: (level, index, hash)."""
    out = [(0, index, leaf)]
    level, i, h = 0, index, leaf
    while i & 1:
        h = node_hash(get(level, i - 1), h)
        level, i = level + 1, i >> 1
        out.append((level, i, h))
    return out


def left_siblings(index: int) -> list[tuple[int, int]]:
    """The stored nodes :func:`append_nodes` reads for leaf ``index``."""
    out = []
    level, i = 0, index
    while i & 1:
        out.append((level, i - 1))
        level, i = level + 1, i >> 1
    return out


# --- verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) -----------------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_BYTES:
        raise ProofError(f"{what} is {len(value)} bytes, not a SHA-256 hash")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` yields for ``leaf`` at ``index`` in a tree of ``size``; ProofError if the
    proof has the wrong shape for that position."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size}")
    _check_hash(leaf, "the leaf hash")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p, "a proof element")
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``proof`` puts ``leaf`` at ``index`` in the tree ``expected_root``."""
    _check_hash(expected_root, "the root")
    if root_from_inclusion(index, size, leaf, proof) != expected_root:
        raise ProofError(f"the inclusion proof for leaf {index} does not lead to the root of tree {size}")


def verify_consistency(first: int, second: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Raise :class:`ProofError` unless the tree ``root1`` of ``first`` leaves is a prefix of ``root2``."""
    if first < 0 or second < 0:
        raise ProofError("tree sizes cannot be negative")
    if first > second:
        raise ProofError(f"a tree of {second} cannot extend a larger tree of {first}")
    if first == second:
        if proof:
            raise ProofError("trees of equal size need an empty proof")
        if first == 0 and (root1 != EMPTY_ROOT or root2 != EMPTY_ROOT):
            raise ProofError("an empty tree has exactly one root, the hash of nothing")
        if root1 != root2:
            raise ProofError(f"two different roots for the same tree size {first}")
        return
    if first == 0:
        # Every tree extends the empty tree; a "proof" of it proves nothing and is refused as malformed.
        raise ProofError("no consistency proof exists from the empty tree")
    if not proof:
        raise ProofError("the consistency proof is empty")
    _check_hash(root1, "the first root")
    _check_hash(root2, "the second root")
    for p in proof:
        _check_hash(p, "a proof element")
    path = list(proof)
    if _is_pow2(first):
        path.insert(0, root1)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than it can be")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than it must be")
    if fr != root1:
        raise ProofError(f"the proof does not lead to the first root (tree {first})")
    if sr != root2:
        raise ProofError(f"the proof does not lead to the second root (tree {second})")


class MemoryTree:
    """A whole tree in memory, for tests and for small logs rebuilt from a bundle."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def get(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def append(self, leaf: bytes) -> None:
        for level, index, h in append_nodes(self.size, leaf, self.get):
            if level == len(self.levels):
                self.levels.append([])
            assert len(self.levels[level]) == index
            self.levels[level].append(h)

    def root(self, size: int | None = None) -> bytes:
        return root(self.size if size is None else size, self.get)
