"""RFC 9162 proofs: every vector of transparency-dev/merkle, and proofs generated here against them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import SHARED
from cyberpact.evidence import merkle
from cyberpact.evidence.errors import ProofError

VECTORS = SHARED / "testdata" / "merkle-rfc9162"


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _b(v: str) -> bytes:
    return base64.b64decode(v)


def test_the_vectors_are_there() -> None:
    assert len(_files("inclusion")) == 98 and len(_files("consistency")) == 98


@pytest.mark.parametrize("path", _files("inclusion"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (v["leafIdx"], v["treeSize"], _b(v["leafHash"]), [_b(p) for p in v["proof"] or []], _b(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _files("consistency"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (v["size1"], v["size2"], _b(v["root1"]), _b(v["root2"]), [_b(p) for p in v["proof"] or []])
    if v["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def _tree(n: int) -> merkle.MemoryTree:
    return merkle.MemoryTree([merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)])


def _reference_root(leaves: list[bytes]) -> bytes:
    # Straight from the RFC's recursive definition, independent of the stored-node machinery.
    if not leaves:
        return merkle.EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = merkle._split(len(leaves))
    return merkle.node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


def test_roots_match_the_rfc_definition_and_the_vectors() -> None:
    tree = _tree(70)
    for n in range(71):
        assert tree.root(n) == _reference_root(tree.levels[0][:n])
    # The RFC 6962 reference tree: leaves are the eight inputs of transparency-dev's tests.
    inputs = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    ref = merkle.MemoryTree([merkle.leaf_hash(bytes.fromhex(x)) for x in inputs])
    assert ref.root().hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


@given(st.integers(1, 300), st.data())
def test_generated_proofs_verify_and_tampered_ones_do_not(size: int, data: st.DataObject) -> None:
    tree = _tree(size)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(index, size, tree.get)
    merkle.verify_inclusion(index, size, tree.levels[0][index], proof, tree.root(size))
    first = data.draw(st.integers(1, size))
    cproof = merkle.consistency_proof(first, size, tree.get)
    merkle.verify_consistency(first, size, tree.root(first), tree.root(size), cproof)
    if proof:
        bad = list(proof)
        bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, tree.levels[0][index], bad, tree.root(size))
    if cproof:
        with pytest.raises(ProofError):
            merkle.verify_consistency(first, size, tree.root(first), tree.root(size), cproof[:-1])


def test_proofs_read_logarithmically_many_nodes() -> None:
    size = 1_000_003
    for index in (0, 1, 524_287, 999_999, size - 1):
        needed = merkle.needed_nodes(lambda get, i=index: merkle.inclusion_proof(i, size, get))
        assert len(needed) <= 2 * size.bit_length()
    needed = merkle.needed_nodes(lambda get: merkle.consistency_proof(333_333, size, get))
    assert len(needed) <= 2 * size.bit_length()
