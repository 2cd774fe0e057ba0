"""API shapes of the evidence package, kept apart from the tables."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cyberpact.kit.time import PAST_MOMENT, is_past_moment

_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Acquisition(BaseModel):
    """Who acquired the content, when, where and how, and under what legal authority."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=200, description="the person or unit that acquired it")
    at: datetime = Field(description="when (RFC 3339, with an offset)")
    where: str = Field(min_length=1, max_length=300, description="place or system it was taken from")
    method: str = Field(min_length=1, max_length=300, description="how: imaging, export, seizure...")
    tool: str = Field(min_length=1, max_length=200)
    tool_version: str = Field(min_length=1, max_length=100)
    authority: str = Field(min_length=1, max_length=300, description="legal authority or order reference")
    notes: str | None = Field(None, max_length=4000)

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone offset")
        # The same rule as for when a request arrived: content not yet acquired has no chain of custody.
        if not is_past_moment(value):
            raise ValueError(PAST_MOMENT)
        return value


class UseConditions(BaseModel):
    """Conditions on use, as the requested State set them (e.g. speciality, confidentiality)."""

    model_config = ConfigDict(extra="forbid")

    purpose: str | None = Field(None, max_length=1000, description="the proceedings it may be used in")
    restrictions: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=50
    )
    confidential: bool = False
    onward_transfer: bool = Field(False, description="may be passed on to a third State")
    until: datetime | None = None


class PackageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_ref: str = Field(min_length=1, max_length=120)
    request_ref: str | None = Field(None, min_length=1, max_length=120)
    title: str = Field(min_length=1, max_length=300)
    description: str | None = Field(None, max_length=10_000)
    use_conditions: UseConditions = Field(default_factory=UseConditions)


class FileDeclare(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=0)
    media_type: str = "application/octet-stream"
    sha256: str | None = Field(None, description="the digest the uploader computed; checked on completion")
    acquisition: Acquisition

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value in (".", "..") or any(c in value for c in "/\\\x00") or not value.isprintable():
            raise ValueError("a file name without path separators or control characters")
        return value

    @field_validator("media_type")
    @classmethod
    def _media_type(cls, value: str) -> str:
        if not _MEDIA_TYPE.match(value):
            raise ValueError("a media type like application/octet-stream")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _HEX64.match(value):
            raise ValueError("64 lower-case hex digits")
        return value


class FileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    index: int
    name: str
    size: int
    media_type: str
    sha256: str | None
    blake2b: str | None
    status: str
    chunk_size: int
    chunks_stored: int
    acquisition: dict[str, Any]


class PackageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    case_ref: str
    request_ref: str | None
    title: str
    description: str | None
    use_conditions: dict[str, Any]
    status: str
    origin_node: str
    created_by: str
    created_at: datetime
    sealed_at: datetime | None
    manifest_digest: str | None
    files: list[FileOut] = []


class UploadState(BaseModel):
    offset: int
    size: int
    complete: bool
    sha256: str | None = None


class Release(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=300, description="who receives it")
    reason: str = Field(min_length=1, max_length=2000)


class TransferCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    peer: str = Field(min_length=1, max_length=120)


class TransferOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    direction: str
    peer: str
    package_id: uuid.UUID | None
    status: str
    manifest_digest: str
    error: str | None
    created_at: datetime
    updated_at: datetime


class EventOut(BaseModel):
    seq: int
    entry: dict[str, Any]
    tree_size: int
    proof: list[str]


class HeadOut(BaseModel):
    size: int
    root: str
    at: datetime
    jws: str


class ProofOut(BaseModel):
    first: int
    second: int
    proof: list[str]


# --- what a peer answers the sender of a transfer: input like any other, checked before it is used --------


class PeerFileState(BaseModel):
    index: int = Field(ge=0)
    chunks_stored: int = Field(ge=0)


class PeerTransferState(BaseModel):
    """A receiving peer's account of a transfer (``transfer.status_of``)."""

    status: str = Field(max_length=20)
    files: list[PeerFileState] = Field(default_factory=list, max_length=100_000)
    peer_head_size: int = Field(0, ge=0)
    receipt: str | None = Field(None, max_length=65_536)
    error: str | None = Field(None, max_length=2000)


class PeerReceiptAnswer(BaseModel):
    """A signed receipt for a transfer, with the proof that the peer's custody log only grew since the
    head this node last saw of it; answered to a completion, or sent as a message."""

    receipt: str = Field(min_length=1, max_length=65_536)
    from_size: int = Field(0, ge=0)
    consistency: list[str] = Field(default_factory=list, max_length=128)


class PeerFileStored(BaseModel):
    """The answer to one chunk sent."""

    chunks_stored: int = Field(ge=0)


class SignedTransferReceipt(BaseModel):
    """What a receiving peer signs in a transfer's receipt (``transfer.complete``); read only once its
    signature holds, and still checked, since a peer's own key signs whatever the peer chooses."""

    transfer_id: str = Field(max_length=64)
    sender: str = Field(max_length=120)
    receiver: str = Field(max_length=120)
    manifest_digest: str = Field(max_length=64)
    status: str = Field(max_length=20)
    reason: str | None = Field(None, max_length=2000)
    receiver_head: str = Field(min_length=1, max_length=65_536)
