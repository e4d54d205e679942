"""JSON shapes of the token API (pydantic): what OpenAPI documents and requests are checked by."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from hubbub.control.auth.store import StreamRule, TokenRecord, TokenSpec


def _plain_text(value: str) -> str:
    # Control characters and lone surrogates cannot be stored (PostgreSQL refuses NUL) and have
    # no business in labels or patterns.
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, AfterValidator(_plain_text)]


class StreamModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    streamName: Text = Field(
        min_length=1, max_length=128,
        description="a stream name, a pattern with * wildcards, or a regex (full match)",
    )
    isRegex: StrictBool = False


class _TokenFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Text = Field("", max_length=256)
    streams: list[StreamModel] = Field(min_length=1, max_length=64)
    allowedOrigins: list[Annotated[Text, Field(max_length=256)]] = Field(
        default_factory=list, max_length=64,
        description="origins (https://app.example.com), hosts or *.example.com; empty = any",
    )
    allowedIpAddresses: list[Annotated[Text, Field(max_length=64)]] = Field(
        default_factory=list, max_length=64, description="IP addresses or CIDRs; empty = any"
    )
    expiresOn: datetime | None = Field(None, description="ISO 8601; no zone means UTC")


class SubscribeTokenCreate(_TokenFields):
    pass


class PublishTokenCreate(_TokenFields):
    multisource: StrictBool = Field(False, description="publishers may give a sourceId")
    record: StrictBool = False


class SubscribeTokenUpdate(BaseModel):
    """Only the fields present are changed; `expiresOn: null` removes the expiry."""

    model_config = ConfigDict(extra="forbid")

    label: Annotated[Text, Field(max_length=256)] | None = None
    streams: Annotated[list[StreamModel], Field(min_length=1, max_length=64)] | None = None
    allowedOrigins: Annotated[
        list[Annotated[Text, Field(max_length=256)]], Field(max_length=64)
    ] | None = None
    allowedIpAddresses: Annotated[
        list[Annotated[Text, Field(max_length=64)]], Field(max_length=64)
    ] | None = None
    expiresOn: datetime | None = None


class PublishTokenUpdate(SubscribeTokenUpdate):
    multisource: StrictBool | None = None
    record: StrictBool | None = None


class TokenOut(BaseModel):
    id: int
    label: str
    token: str | None = Field(None, description="the secret: present only in the create reply")
    streams: list[StreamModel]
    allowedOrigins: list[str]
    allowedIpAddresses: list[str]
    expiresOn: str | None
    addedOn: str
    updatedOn: str
    revokedOn: str | None
    lastUsedOn: str | None
    isActive: bool
    multisource: bool | None = None
    record: bool | None = None


class TokenEnvelope(BaseModel):
    status: str = "success"
    data: TokenOut


class TokenPage(BaseModel):
    items: list[TokenOut]
    total: int
    offset: int
    limit: int


class TokenPageEnvelope(BaseModel):
    status: str = "success"
    data: TokenPage


def to_timestamp(value: datetime | None, field: str) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        stamp = value.timestamp()
    except (OverflowError, ValueError, OSError):
        raise ValueError(f"{field} is out of range") from None
    if not math.isfinite(stamp):
        raise ValueError(f"{field} is out of range")
    return stamp


def iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def spec_from_create(body: SubscribeTokenCreate | PublishTokenCreate) -> TokenSpec:
    expires = to_timestamp(body.expiresOn, "expiresOn")
    if expires is not None and expires <= time.time():
        raise ValueError("expiresOn is in the past")
    return TokenSpec(
        label=body.label,
        streams=[StreamRule(s.streamName, s.isRegex) for s in body.streams],
        allowed_origins=list(body.allowedOrigins),
        allowed_ips=list(body.allowedIpAddresses),
        expires_on=expires,
        multisource=getattr(body, "multisource", False),
        record=getattr(body, "record", False),
    )


_UPDATE_FIELDS = {
    "label": "label",
    "allowedOrigins": "allowed_origins",
    "allowedIpAddresses": "allowed_ips",
    "multisource": "multisource",
    "record": "record",
}


def changes_from_update(body: SubscribeTokenUpdate) -> dict[str, Any]:
    """TokenSpec field -> new value, for the fields the request named."""
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name == "streams":
            if value is None:
                raise ValueError("streams cannot be null")
            changes["streams"] = [StreamRule(s.streamName, s.isRegex) for s in value]
        elif name == "expiresOn":
            changes["expires_on"] = to_timestamp(value, "expiresOn")
        elif value is None:
            raise ValueError(f"{name} cannot be null")
        else:
            changes[_UPDATE_FIELDS[name]] = value
    return changes


def token_json(record: TokenRecord, secret: str | None = None) -> dict[str, Any]:
    spec = record.spec
    out: dict[str, Any] = {
        "id": record.id,
        "label": spec.label,
        "streams": [{"streamName": r.name, "isRegex": r.is_regex} for r in spec.streams],
        "allowedOrigins": spec.allowed_origins,
        "allowedIpAddresses": spec.allowed_ips,
        "expiresOn": iso(spec.expires_on),
        "addedOn": iso(record.added_on),
        "updatedOn": iso(record.updated_on),
        "revokedOn": iso(record.revoked_on),
        "lastUsedOn": iso(record.last_used_on),
        "isActive": record.refusal(time.time()) is None,
    }
    if secret is not None:
        out["token"] = secret
    if record.kind == "publish":
        out["multisource"] = spec.multisource
        out["record"] = spec.record
    return out
