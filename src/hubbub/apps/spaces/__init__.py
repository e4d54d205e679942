"""Spaces: Clubhouse-style audio rooms on hubbub (rooms, hands, promote/demote, web UI).

A client of the platform like any customer app: it holds wildcard publish/subscribe tokens,
asks the Director for short-lived JWTs and stops demoted speakers through the admin API.
"""

from hubbub.apps.spaces.app import SpacesApp
from hubbub.apps.spaces.config import SpacesConfig

__all__ = ["SpacesApp", "SpacesConfig"]
