"""The effective settings of `hubbub serve`: flag > env var (`HUBBUB_*`) > config file > default.

`Flags(parser)` takes the serve parser once all its flags exist: it keeps each flag's default for
the settings model and then sets argparse's to SUPPRESS, so a parse holds only the flags the user
gave. `resolve` layers them over pydantic-settings' env source, the file and the defaults, and
returns the argparse Namespace that `serve` always used, plus one dataclass per table (`sfu`:
the SfuConfig, `webhooks`, `recording`), validated by pydantic (their __post_init__ included).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
from typing import Any, ClassVar, get_type_hints

from pydantic import Field, ValidationError, create_model
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError

from hubbub.config import Config
from hubbub.settings.files import SettingsError, read
from hubbub.settings.flags import field_for, setting_actions

ENV_PREFIX = "HUBBUB_"
FLAG_SECTIONS = frozenset({"media", "control", "auth"})
"""Sections of `Config` that the flags set (a field without a flag keeps its default)."""
LEGACY_ENV = {"HUBBUB_REDIS_URL": "redis"}
"""Env names from before the config file, still read (after `HUBBUB_<KEY>`)."""


class ServeSettings(BaseSettings):
    """Fields are added per parser (`Flags`): one per flag, and one table per section of
    `Config` that has no flags (`[sfu]` with `[sfu.multiplexer]`..., `[webhooks]`, ...)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid",
        coerce_numbers_to_str=True,  # `workers = 4` in a file for the `--workers N|auto` flag
    )
    layers: ClassVar[list[dict[str, Any]]] = []
    """Below the environment, highest first: legacy env names, then the file."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, *(InitSettingsSource(settings_cls, layer) for layer in cls.layers))


class Flags:
    """The settings of one parser (`hubbub serve`, `hubbub config show`): `fields` by key."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        actions = list(setting_actions(parser))
        self.fields = {action.dest: field_for(action) for action in actions} | table_fields()
        for action in actions:
            action.default = argparse.SUPPRESS

    def resolve(self, given: argparse.Namespace) -> argparse.Namespace:
        """Every setting's value; SettingsError says which one is wrong and where it came from."""
        path: str | None = getattr(given, "config", None)
        file = read(path) if path else {}
        model = self.model()
        model.layers = [_legacy_env(), file]
        _refuse_sfu_media_timeout(file)
        try:
            settings = model()
        except ValidationError as exc:
            raise SettingsError(self._explain(exc, path)) from None
        except SourceError as exc:  # an env var that is not the JSON a table needs
            raise SettingsError(str(exc)) from None
        values = {name: getattr(settings, name) for name in type(settings).model_fields}
        values.update(vars(given))  # the flags given win
        return argparse.Namespace(**values)

    def model(self) -> type[ServeSettings]:
        return create_model(  # type: ignore[no-any-return, call-overload]
            "HubbubSettings", __base__=ServeSettings, __config__=None, **self.fields)

    def _explain(self, error: ValidationError, path: str | None) -> str:
        lines = []
        for problem in error.errors():
            loc = [str(part) for part in problem["loc"]]
            message = problem["msg"].removeprefix("Value error, ")
            if problem["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
                message = "unknown setting" + _did_you_mean(loc, list(self.fields))
            lines.append(f"{'.'.join(loc)} ({self._origin(loc, path)}): {message}")
        return "; ".join(lines)

    @staticmethod
    def _origin(loc: list[str], path: str | None) -> str:
        env = ENV_PREFIX + "__".join(loc).upper()
        named = sorted(n for n in map(str.upper, os.environ)
                       if n == env or n.startswith(env + "__"))
        named += [old for old, key in LEGACY_ENV.items() if loc[0] == key and old in os.environ]
        if named:
            return f"env {', '.join(named)}"
        return f"in {path}" if path else "default"


def table_fields() -> dict[str, tuple[Any, Any]]:
    """`Config`'s sections that have no flags (the sfu's knobs, webhooks, recording, ...): each
    is a table of its dataclass's fields."""
    hints = get_type_hints(Config)
    return {
        section.name: (hints[section.name], Field(default_factory=hints[section.name]))
        for section in dataclasses.fields(Config)
        if section.name not in FLAG_SECTIONS and dataclasses.is_dataclass(hints[section.name])
    }


def _legacy_env() -> dict[str, Any]:
    return {key: os.environ[old] for old, key in LEGACY_ENV.items()
            if old in os.environ and ENV_PREFIX + key.upper() not in os.environ}


def _refuse_sfu_media_timeout(file: dict[str, Any]) -> None:
    sfu = file.get("sfu")
    if (isinstance(sfu, dict) and "media_timeout" in sfu) or \
            f"{ENV_PREFIX}SFU__MEDIA_TIMEOUT" in map(str.upper, os.environ):
        raise SettingsError("sfu.media_timeout: set media_timeout (--media-timeout) instead; "
                            "control applies it to the sfu")


def _did_you_mean(loc: list[str], top_level: list[str]) -> str:
    if len(loc) != 1:
        return ""
    close = difflib.get_close_matches(loc[0], top_level, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


__all__ = ["Flags", "ServeSettings", "SettingsError"]
