"""First start: the data dir, the admin API secret and the signing key, made once and kept."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from hubbub.config import AuthConfig
from hubbub.control.auth import keys
from hubbub.control.auth.store import default_url

API_SECRET_FILE = "api-secret"


@dataclass(frozen=True)
class DataDir:
    path: Path
    api_secret: str
    api_secret_created: bool      # True only on the start that generated it (print it then)
    api_secret_file: Path | None  # None when the secret came from configuration
    signing_key: keys.SigningKey
    database_url: str


def _read_or_create_secret(path: Path) -> tuple[str, bool]:
    if path.exists():
        secret = path.read_text().strip()
        if len(secret) < 16:
            raise ValueError(f"{path}: API secret shorter than 16 characters")
        return secret, False
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return _read_or_create_secret(path)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret, True


def prepare(config: AuthConfig) -> DataDir:
    """Create what is missing (dir 0700, key, secret) and return what the node needs."""
    path = Path(config.data_dir)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    signing_key, _ = keys.load_or_create(path)
    if config.api_secret:
        if len(config.api_secret) < 16:
            raise ValueError("the API secret must be at least 16 characters")
        secret, created, secret_file = config.api_secret, False, None
    else:
        secret_file = path / API_SECRET_FILE
        secret, created = _read_or_create_secret(secret_file)
    return DataDir(
        path=path,
        api_secret=secret,
        api_secret_created=created,
        api_secret_file=secret_file,
        signing_key=signing_key,
        database_url=config.database_url or default_url(str(path.resolve())),
    )
