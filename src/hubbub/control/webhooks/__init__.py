"""Webhooks (issue 18): node events POSTed to the operator's backend, Millicast-shaped
(`{type, event, timestamp, data}`), signed with HMAC-SHA256, retried with backoff, logged.

events.py (payload shapes), signing.py (the signature), store.py/schema.py (registrations and
the delivery log in the node's SQL store), dispatcher.py (`Webhooks`: `emit` enqueues, sender
tasks deliver), api.py (the admin REST router). docs/WEBHOOKS.md is the user's description.
"""

from hubbub.control.webhooks.dispatcher import Webhooks
from hubbub.control.webhooks.events import EVENT_TYPES, WebhookEvent

__all__ = ["EVENT_TYPES", "WebhookEvent", "Webhooks"]
