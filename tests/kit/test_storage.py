"""Storage backends behind one interface, each tested for real: a directory and an S3-compatible server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import make_settings
from cyberpact.evidence import chunks, service, uploads
from cyberpact.evidence.errors import TamperDetected
from cyberpact.evidence.schemas import Acquisition
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database
from cyberpact.kit.errors import NotFound
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.storage import (
    LocalStorage,
    ObjectStorage,
    S3Storage,
    StorageError,
    build_storage,
    check_key,
)
from evidence.helpers import ACQUISITION, MotoServer


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStorage:
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    moto: MotoServer = request.getfixturevalue("moto")
    s = make_settings("sqlite://", tmp_path, **moto.settings_overrides(f"b-{uuid.uuid4().hex[:12]}"))
    store = build_storage(s)
    assert isinstance(store, S3Storage)
    store.ensure_bucket()
    return store


def test_put_get_list_delete(storage: ObjectStorage) -> None:
    storage.put("pkg/00000/0000000001", b"one")
    storage.put("pkg/00000/0000000000", b"zero")
    storage.put("pkg/00001/0000000000", b"x" * 5_000_000)
    storage.put("other/00000/0000000000", b"keep")
    assert storage.get("pkg/00000/0000000000") == b"zero"
    storage.put("pkg/00000/0000000000", b"replaced")
    assert storage.get("pkg/00000/0000000000") == b"replaced"
    assert storage.exists("pkg/00001/0000000000") and not storage.exists("pkg/00002/0000000000")
    assert list(storage.keys("pkg")) == [
        "pkg/00000/0000000000",
        "pkg/00000/0000000001",
        "pkg/00001/0000000000",
    ]
    assert list(storage.keys("pkg/00000")) == ["pkg/00000/0000000000", "pkg/00000/0000000001"]
    with pytest.raises(NotFound):
        storage.get("pkg/00009/0000000000")
    assert storage.delete_prefix("pkg") == 3
    assert list(storage.keys("pkg")) == [] and storage.get("other/00000/0000000000") == b"keep"
    assert storage.delete_prefix("pkg") == 0


@pytest.mark.parametrize("key", ["../x", "a/../b", "/abs", "a//b", "", ".hidden", "a/b\\c", "a b", "x" * 200])
def test_keys_that_could_escape_are_refused(key: str, storage: ObjectStorage) -> None:
    with pytest.raises(ValueError, match="not a storage key"):
        storage.put(key, b"x")
    with pytest.raises(ValueError):
        check_key(key)


def test_local_writes_are_atomic_and_leave_no_temporaries(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "s")
    store.put("p/00000/0000000000", b"a" * 1000)
    assert [p.name for p in (tmp_path / "s" / "p" / "00000").iterdir()] == ["0000000000"]
    (tmp_path / "s" / "p" / "00000").chmod(0o500)
    try:
        if os.geteuid() != 0:  # root ignores directory permissions
            with pytest.raises(StorageError):
                store.put("p/00000/0000000001", b"b")
    finally:
        (tmp_path / "s" / "p" / "00000").chmod(0o700)


def test_unreachable_s3_is_a_storage_error(tmp_path: Path) -> None:
    from conftest import free_port

    s = make_settings(
        "sqlite://",
        tmp_path,
        storage="s3",
        s3_endpoint=f"http://127.0.0.1:{free_port()}",
        s3_access_key="a",
        s3_secret_key="b",
    )
    store = build_storage(s)
    assert isinstance(store, S3Storage)
    store.client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(StorageError, match="S3 get failed"):
        store.get("p/00000/0000000000")


def test_evidence_on_s3_round_trips_and_detects_tampering(
    db_url: str, tmp_path: Path, moto: MotoServer
) -> None:
    s = make_settings(db_url, tmp_path, evidence_chunk_bytes=64 * 1024, **moto.settings_overrides("evidence"))
    store = build_storage(s)
    assert isinstance(store, S3Storage)
    store.ensure_bucket()
    ctx = service.Context(s, KeyStore(s.key_passphrase_value(), s.key_kdf_iterations), store)
    db = Database(s.sqlalchemy_url)
    data = os.urandom(5 * 64 * 1024 + 3)
    try:
        with db.transaction() as session:
            p = service.create_package(session, ctx, SYSTEM, case_ref="S3", request_ref=None, title="on s3")
            service.add_file(
                session,
                ctx,
                SYSTEM,
                p,
                name="img",
                size=len(data),
                media_type="application/x-raw",
                acquisition=Acquisition.model_validate(ACQUISITION),
            )
            pid = p.id
        up = uploads.Upload(db, ctx, SYSTEM, pid, 0, 0)
        up.write(data)
        up.finish()
        with db.transaction() as session:
            package = service.seal(session, ctx, SYSTEM, service.get_package(session, pid))
            _, body = service.open_file(session, ctx, SYSTEM, package, 0)
            assert b"".join(body) == data
            service.verify_package(session, ctx, SYSTEM, package)
        key = chunks.object_key(pid, 0, 2)
        raw = bytearray(store.get(key))
        raw[40] ^= 1
        store.put(key, bytes(raw))
        with (
            db.transaction() as session,
            pytest.raises(TamperDetected, match="chunk 2: failed authentication"),
        ):
            service.verify_package(session, ctx, SYSTEM, service.get_package(session, pid))
    finally:
        db.dispose()
