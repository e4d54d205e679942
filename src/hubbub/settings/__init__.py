"""Settings of `hubbub serve` from flags, `HUBBUB_*` env vars and a config file (TOML or YAML).

Layout (README "Configuration", deploy/hubbub.toml): every flag is a top-level key named as the
flag (`--media-port` → `media_port`, env `HUBBUB_MEDIA_PORT`); the sfu's knobs, which have no
flag, are the `[sfu]` table and its `[sfu.multiplexer]`, `[sfu.nack]`, `[sfu.bwe]` tables (env
`HUBBUB_SFU__MULTIPLEXER__HOLD`). The result is the argparse Namespace the CLI builds its
`Config` from, so in-process users (tests, Node) keep constructing dataclasses directly.
"""

from hubbub.settings.files import SettingsError
from hubbub.settings.load import ENV_PREFIX, Flags, table_fields
from hubbub.settings.show import render

__all__ = ["ENV_PREFIX", "Flags", "SettingsError", "render", "table_fields"]
