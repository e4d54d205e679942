"""What a token covers: stream patterns, allowed origins and allowed client addresses.

Everything is validated when a token is created or updated (ValueError with a clear message), so
matching at Director and WebSocket time cannot fail.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import re._constants as sre_constants  # type: ignore[import-not-found]  # public alias deprecated
import re._parser as sre_parse  # type: ignore[import-not-found]
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

MAX_PATTERN_LENGTH = 128
"""Longest stream name or pattern; stream names themselves are at most 128 characters."""

# The stream-name alphabet of control/node.py plus `*` for wildcards.
_WILDCARD = re.compile(r"^[A-Za-z0-9_.\-~:@+*]{1,128}$")

_REPEATS: tuple[Any, ...] = (
    sre_constants.MAX_REPEAT,
    sre_constants.MIN_REPEAT,
    sre_constants.POSSESSIVE_REPEAT,
)


MAX_REGEX_REPEATS = 3
"""Adjacent repeats backtrack polynomially (n^k for k of them): k <= 3 keeps a 128-character
name to a few million steps at worst."""


def _check_regex_shape(items: Any, inside_repeat: bool, repeats: list[int]) -> None:
    """Refuse the shapes that backtrack exponentially (Python's `re` has no timeout).

    Inside a repeat only plain items may stand (literals, classes, groups of those): a repeat in
    a repeat (`(a+)+`) or an alternation in a repeat (`(a|aa)*`) is refused, as are
    backreferences and more than MAX_REGEX_REPEATS repeats in all.
    """
    for op, arg in items:
        if op is sre_constants.GROUPREF or op is sre_constants.GROUPREF_EXISTS:
            raise ValueError("regex backreferences are not allowed in stream patterns")
        if op in _REPEATS:
            if inside_repeat:
                raise ValueError("nested repetition (like (a+)+) is not allowed in stream patterns")
            repeats[0] += 1
            if repeats[0] > MAX_REGEX_REPEATS:
                raise ValueError(
                    f"stream pattern regexes may use at most {MAX_REGEX_REPEATS} repeats "
                    "(*, +, ?, {m,n})"
                )
            _check_regex_shape(arg[2], True, repeats)
        elif op is sre_constants.SUBPATTERN:
            _check_regex_shape(arg[3], inside_repeat, repeats)
        elif op is sre_constants.BRANCH:
            if inside_repeat:
                raise ValueError(
                    "alternation inside repetition (like (a|aa)*) is not allowed in stream patterns"
                )
            for branch in arg[1]:
                _check_regex_shape(branch, inside_repeat, repeats)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            _check_regex_shape(arg[1], inside_repeat, repeats)
        elif op is sre_constants.ATOMIC_GROUP:
            _check_regex_shape(arg, inside_repeat, repeats)


def validate_stream_pattern(name: str, is_regex: bool) -> None:
    """ValueError unless `name` is a usable pattern; regexes are compiled here, at create time."""
    if not name:
        raise ValueError("streamName must not be empty")
    if len(name) > MAX_PATTERN_LENGTH:
        raise ValueError(f"streamName is longer than {MAX_PATTERN_LENGTH} characters")
    if not is_regex:
        if not _WILDCARD.match(name):
            raise ValueError(
                f"streamName {name!r} may use only letters, digits, _.-~:@+ and the * wildcard"
            )
        return
    try:
        parsed = sre_parse.parse(name)
    except re.error as exc:
        raise ValueError(f"streamName {name!r} is not a valid regex: {exc}") from None
    _check_regex_shape(parsed, False, [0])


@functools.lru_cache(maxsize=1024)
def _compiled(name: str, is_regex: bool) -> re.Pattern[str]:
    if is_regex:
        return re.compile(name)
    return re.compile(".*".join(re.escape(part) for part in name.split("*")), re.DOTALL)


def stream_matches(name: str, is_regex: bool, stream: str) -> bool:
    """Whole-name match: a regex `demo\\d` does not cover `mydemo1x` (anchored, unlike search)."""
    return _compiled(name, is_regex).fullmatch(stream) is not None


def covers(patterns: Iterable[tuple[str, bool]], stream: str) -> bool:
    return any(stream_matches(name, is_regex, stream) for name, is_regex in patterns)


# --- origins -----------------------------------------------------------------------------

_LABEL = r"[a-z0-9]([a-z0-9\-]*[a-z0-9])?"
_HOST_PATTERN = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


def _split_origin_rule(rule: str) -> tuple[str | None, str, int | None]:
    """(scheme or None, host pattern, port or None) of an allowedOrigins entry."""
    text = rule.strip().lower()
    scheme: str | None = None
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme not in ("http", "https"):
            raise ValueError(f"allowedOrigins entry {rule!r}: scheme must be http or https")
    host, sep, port_text = text.partition(":")
    port: int | None = None
    if sep:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"allowedOrigins entry {rule!r}: bad port")
        port = int(port_text)
    if not _HOST_PATTERN.match(host) and host != "localhost":
        raise ValueError(
            f"allowedOrigins entry {rule!r}: expected an origin like https://app.example.com, "
            "a host like example.com or a wildcard like *.example.com"
        )
    return scheme, host, port


def validate_origin_rule(rule: str) -> str:
    """The rule, normalised (lowercase, no trailing slash); ValueError if unusable."""
    if len(rule) > 256:
        raise ValueError("allowedOrigins entry is longer than 256 characters")
    rule = rule.strip().rstrip("/")
    _split_origin_rule(rule)
    return rule.lower()


def origin_allowed(rules: Iterable[str], origin: str | None) -> bool:
    """Origin header (RFC 6454 §7) against the rules; no rules = any origin, even none.

    With rules, a request without an Origin header is refused: a browser always sends one on
    cross-origin fetches and WebSockets, so its absence means "not from an allowed page".
    """
    rules = list(rules)
    if not rules:
        return True
    if not origin or origin == "null":
        return False
    try:
        parts = urlsplit(origin.lower())
        host, port = parts.hostname, parts.port
    except ValueError:
        return False
    if not host:
        return False
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    for rule in rules:
        scheme, pattern, rule_port = _split_origin_rule(rule)
        if scheme is not None and scheme != parts.scheme:
            continue
        if rule_port is not None and rule_port != (port or default_port):
            continue
        if scheme is not None and rule_port is None and port not in (None, default_port):
            continue  # "https://a.com" means the default port only
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


# --- client addresses --------------------------------------------------------------------


def validate_ip_rule(rule: str) -> str:
    """An IP or CIDR, normalised (`10.0.0.7/8` -> `10.0.0.0/8`); ValueError otherwise."""
    try:
        return str(ipaddress.ip_network(rule.strip(), strict=False))
    except ValueError:
        raise ValueError(
            f"allowedIpAddresses entry {rule!r} is not an IP address or CIDR network"
        ) from None


def ip_allowed(rules: Iterable[str], client_ip: str | None) -> bool:
    """No rules = any address. IPv4-mapped IPv6 (::ffff:a.b.c.d) counts as the IPv4 address."""
    rules = list(rules)
    if not rules:
        return True
    if not client_ip:
        return False
    try:
        addr = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in ipaddress.ip_network(rule, strict=False) for rule in rules)
