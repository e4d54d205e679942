"""`hubbub config show`: the effective settings as TOML (loadable as `--config`) or JSON, with
every secret masked: keys named *secret*, *password*, *token* or *key*, and the password of any
URL (`postgresql+asyncpg://user:***@db/hubbub`, `redis://:***@host`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import tomli_w

MASK = "***"
SECRET_WORDS = frozenset({"secret", "password", "token", "key", "credentials"})


def effective(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain data of the settings (dataclasses as tables), secrets masked, sorted by key."""
    out: dict[str, Any] = {}
    for key in sorted(values):
        value = values[key]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        out[key] = effective(value) if isinstance(value, Mapping) else _masked(key, value)
    return out


def render(values: Mapping[str, Any], form: str) -> str:
    data = effective(values)
    if form == "json":
        return json.dumps(data, indent=2) + "\n"
    flat = {k: v for k, v in data.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    # TOML has no null: an unset optional (`media_host`) is left out, which means the same.
    header = ("# hubbub config show: the settings `hubbub serve` would use (flag > env > file >\n"
              "# default); secrets are masked as ***, so put them back before using this file.\n")
    return header + tomli_w.dumps({**flat, **tables})


def _masked(key: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_masked(key, item) for item in value]
    if not isinstance(value, str) or not value:
        return value
    if SECRET_WORDS.intersection(key.lower().split("_")):
        return MASK
    return _url_without_password(value)


def _url_without_password(value: str) -> str:
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return value
    if not password:
        return value
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:{MASK}@{host}"))
