"""Reading a config file: TOML (`.toml`) or YAML (`.yaml`, `.yml`) into one mapping."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the key, env var or file."""


def read(path: str) -> dict[str, Any]:
    """The file's settings, keys with `-` spelled `_` as in the env var names."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise SettingsError(f"{path}: a config file is .toml, .yaml or .yml")
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path} is not valid {suffix[1:].upper()}: {exc}") from None
    if data is None:
        return {}  # an empty YAML file
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping of settings at the top level")
    return _underscored(data)


def _underscored(data: dict[str, Any]) -> dict[str, Any]:
    return {
        str(key).replace("-", "_"): _underscored(value) if isinstance(value, dict) else value
        for key, value in data.items()
    }
