"""JSON shapes of the webhook API (pydantic): what OpenAPI documents and requests are checked by."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from hubbub.control.webhooks.dispatcher import Webhook
from hubbub.control.webhooks.events import EVENT_TYPES
from hubbub.control.webhooks.store import Delivery

MAX_URL = 2048
EventType = Literal["feeds", "viewerConnection", "recordings", "tokens"]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


def receiver_url(value: str) -> str:
    """An absolute http(s) URL with a host; ValueError saying what is wrong."""
    if any(ord(c) <= 32 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not url.host:
        raise ValueError("must name a host")
    if url.fragment:
        raise ValueError("must not have a #fragment")
    return value


def _plain_text(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("must not contain control characters")
    return value


ReceiverUrl = Annotated[
    str, Field(min_length=8, max_length=MAX_URL, description="where events are POSTed: "
               "http:// or https://"), AfterValidator(receiver_url)]
Description = Annotated[str, Field(max_length=256), AfterValidator(_plain_text)]
Types = Annotated[
    list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES),
                           description="the event types sent to this webhook")]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: ReceiverUrl
    types: Types
    description: Description = ""
    active: StrictBool = Field(True, description="false: registered but sent nothing")


class WebhookUpdate(BaseModel):
    """Only the fields present change; `rotateSecret: true` makes a new secret (returned in
    this reply only; deliveries already queued are signed with the new one)."""

    model_config = ConfigDict(extra="forbid")

    url: ReceiverUrl | None = None
    types: Types | None = None
    description: Description | None = None
    active: StrictBool | None = None
    rotateSecret: StrictBool = False


class WebhookOut(BaseModel):
    id: int
    url: str
    types: list[str]
    description: str
    active: bool
    createdOn: str
    updatedOn: str
    secret: str | None = Field(
        None, description="the signing secret: present only when created or rotated")
    queued: int = Field(description="events waiting to be sent from this node")


class WebhookEnvelope(BaseModel):
    status: str = "success"
    data: WebhookOut


class WebhookPage(BaseModel):
    items: list[WebhookOut]
    total: int
    offset: int
    limit: int


class WebhookPageEnvelope(BaseModel):
    status: str = "success"
    data: WebhookPage


class Ping(BaseModel):
    eventId: str = Field(description="the X-Hubbub-Event-Id of the test event")
    queued: int = Field(description="events waiting for this receiver, the test included")


class PingEnvelope(BaseModel):
    status: str = "success"
    data: Ping


class DeliveryOut(BaseModel):
    id: int
    eventId: str = Field(description="the X-Hubbub-Event-Id header: same on every attempt")
    type: str
    event: str
    attempt: int = Field(description="1 for the first POST of this event, then 2, 3 ...")
    delivered: bool = Field(description="the receiver answered 2xx")
    final: bool = Field(description="no further attempt follows")
    statusCode: int | None = Field(description="the receiver's HTTP status; null: no answer")
    error: str | None
    eventTime: str
    attemptedOn: str
    durationMs: float


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    total: int
    offset: int
    limit: int


class DeliveryPageEnvelope(BaseModel):
    status: str = "success"
    data: DeliveryPage


def iso(stamp: float) -> str:
    when = datetime.fromtimestamp(stamp, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_json(hook: Webhook, queued: int, with_secret: bool = False) -> dict[str, object]:
    out: dict[str, object] = {
        "id": hook.id, "url": hook.url, "types": sorted(hook.types),
        "description": hook.description, "active": hook.active,
        "createdOn": iso(hook.created_on), "updatedOn": iso(hook.updated_on),
        "queued": queued,
    }
    if with_secret:
        out["secret"] = hook.secret
    return out


def delivery_json(row: Delivery) -> dict[str, object]:
    return {
        "id": row.id, "eventId": row.event_id, "type": row.type, "event": row.event,
        "attempt": row.attempt, "delivered": row.delivered, "final": row.final,
        "statusCode": row.status_code, "error": row.error, "eventTime": iso(row.event_time),
        "attemptedOn": iso(row.attempted_on), "durationMs": round(row.duration * 1000, 1),
    }
