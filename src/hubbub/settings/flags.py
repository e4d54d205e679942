"""The `hubbub serve` flags as settings fields: one declaration (the argparse flag) per setting.

Each flag `--media-port` is the file key `media_port` and the env var `HUBBUB_MEDIA_PORT` (its
argparse `dest`), with the flag's type, choices and default. Flags added later are settable from
the file and the environment the moment they exist.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_settings import NoDecode

NOT_SETTINGS = frozenset({"help", "version", "config", "worker_index", "func", "flags"})
"""Destinations that are not settings: `--config` names the file, `--worker-index` is how the
`--workers` supervisor tells its children apart."""


def setting_actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.dest not in NOT_SETTINGS and action.option_strings:
            yield action


def field_for(action: argparse.Action) -> tuple[Any, Any]:
    """(annotation, pydantic Field) of one flag, for `pydantic.create_model`."""
    default = action.default
    if action.nargs == 0:  # store_true and kin
        return bool, Field(default=default)
    item = _scalar(action)
    if isinstance(action, argparse._AppendAction):
        # A list from the file, or a comma-separated (or JSON) list from the environment.
        listed = Annotated[list[item], NoDecode, BeforeValidator(_split)]  # type: ignore[valid-type]
        return listed, Field(default_factory=lambda: list(default or []))
    if default is None:
        return item | None, Field(default=None)
    return item, Field(default=default)


def _scalar(action: argparse.Action) -> Any:
    kind: Any
    if action.type in (int, float, None, str):
        kind = action.type or str
    else:  # `--rtmp-port 1935|off` and other parsers: the flag's own function decides
        kind = Annotated[Any, BeforeValidator(_through(action.type))]
    if action.choices is not None:
        kind = Annotated[kind, AfterValidator(_among(list(action.choices)))]
    return kind


def _through(parse: Any) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        if value is False:  # YAML 1.1 reads a bare `off` as false: `rtmp_port: off`
            value = "off"
        try:
            return parse(str(value))
        except (argparse.ArgumentTypeError, TypeError) as exc:
            raise ValueError(str(exc)) from None
    return convert


def _among(choices: list[Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(map(str, choices))}")
        return value
    return check


def _split(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]
