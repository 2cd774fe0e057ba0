"""Object storage for evidence: one interface, a local directory (default) and an S3-compatible store.

Objects are small (one encrypted chunk, a few MiB) and written whole, so the interface is put/get of
bytes; streaming happens one level up, chunk by chunk. Keys are built by the evidence package, never
from user input, and are still checked here so that no key can name a path outside the store.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cyberpact.config import Settings
from cyberpact.kit.errors import ConfigurationError, CyberpactError, NotFound

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,7}")


class StorageError(CyberpactError):
    """The storage backend failed (unreachable, full, denied); the operation can be retried."""

    code = "storage_unavailable"
    status = 503
    title = "Storage unavailable"


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or ".." in key:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class ObjectStorage(Protocol):
    name: str

    def put(self, key: str, data: bytes | bytearray) -> None:
        """Store ``data`` under ``key`` atomically: a reader sees the old object, the new one, or none."""

    def get(self, key: str) -> bytes:
        """The object's bytes; ``NotFound`` when there is none."""

    def exists(self, key: str) -> bool: ...

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix/``, in lexical order."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix/``; returns how many."""


class LocalStorage:
    """A directory tree. Writes go to a temporary file that is fsynced and renamed into place, so a
    crash leaves either the whole chunk or nothing under its name."""

    name = "local"

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root.resolve()
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes | bytearray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with tmp.open("wb") as f:
                f.write(data)
                if self.fsync:
                    os.fsync(f.fileno())
            tmp.replace(path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageError(f"cannot write {key}: {exc.strerror or exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"no stored object {key}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return
        found = sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
        yield from found

    def delete_prefix(self, prefix: str) -> int:
        count = 0
        base = self._path(prefix)
        if not base.is_dir():
            return 0
        for p in sorted(base.rglob("*"), key=lambda q: len(q.parts), reverse=True):
            if p.is_dir():
                p.rmdir()
            else:
                p.unlink()
                count += 1
        base.rmdir()
        return count


class S3Storage:
    """An S3-compatible bucket through boto3 (AWS, MinIO, Ceph RGW, moto in the tests)."""

    name = "s3"

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            "region_name": settings.s3_region,
            "config": Config(
                retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}
            ),
        }
        if settings.s3_endpoint:
            kwargs["endpoint_url"] = settings.s3_endpoint
        if settings.s3_access_key is not None and settings.s3_secret_key is not None:
            kwargs["aws_access_key_id"] = settings.s3_access_key.get_secret_value()
            kwargs["aws_secret_access_key"] = settings.s3_secret_key.get_secret_value()
        return cls(boto3.client("s3", **kwargs), settings.s3_bucket)

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise NotFound(f"no stored object {kwargs.get('Key', '')}") from exc
            raise StorageError(f"S3 {what} failed: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 {what} failed: {exc}") from exc

    def ensure_bucket(self) -> None:
        try:
            self._call("head bucket", self.client.head_bucket)
        except (NotFound, StorageError):
            self._call("create bucket", self.client.create_bucket)

    def put(self, key: str, data: bytes | bytearray) -> None:
        self._call("put", self.client.put_object, Key=check_key(key), Body=data)

    def get(self, key: str) -> bytes:
        body = self._call("get", self.client.get_object, Key=check_key(key))["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        try:
            self._call("head", self.client.head_object, Key=check_key(key))
        except NotFound:
            return False
        return True

    def keys(self, prefix: str) -> Iterator[str]:
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._call("list", self.client.list_objects_v2, Prefix=check_key(prefix) + "/", **extra)
            for item in page.get("Contents", []):
                yield str(item["Key"])
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def delete_prefix(self, prefix: str) -> int:
        batch: list[str] = []
        count = 0
        for key in list(self.keys(prefix)):
            batch.append(key)
            if len(batch) == 1000:  # the most one DeleteObjects call takes
                count += self._delete(batch)
                batch = []
        if batch:
            count += self._delete(batch)
        return count

    def _delete(self, keys: list[str]) -> int:
        self._call(
            "delete",
            self.client.delete_objects,
            Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
        )
        return len(keys)


def build_storage(settings: Settings) -> ObjectStorage:
    """The backend the settings choose; built by the app factory or the CLI, never at import."""
    if settings.storage == "local":
        return LocalStorage(settings.storage_dir or settings.data_dir / "evidence")
    if settings.storage == "s3":
        if not settings.s3_bucket:
            raise ConfigurationError("CYBERPACT_STORAGE=s3 needs CYBERPACT_S3_BUCKET")
        return S3Storage.from_settings(settings)
    raise ConfigurationError(f"unknown CYBERPACT_STORAGE {settings.storage!r}")
