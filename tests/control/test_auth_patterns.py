"""Stream patterns (wildcard, anchored regex), origin and client-address rules."""

from __future__ import annotations

import fnmatch
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.control.auth.patterns import (
    covers,
    ip_allowed,
    origin_allowed,
    stream_matches,
    validate_ip_rule,
    validate_origin_rule,
    validate_stream_pattern,
)


@pytest.mark.parametrize(
    ("pattern", "is_regex", "stream", "expected"),
    [
        ("demo", False, "demo", True),
        ("demo", False, "demo1", False),
        ("demo", False, "xdemo", False),
        ("demo*", False, "demo", True),
        ("demo*", False, "demo-room-7", True),
        ("demo*", False, "mydemo", False),
        ("*-live", False, "a-live", True),
        ("*-live", False, "a-live2", False),
        ("a*b*c", False, "abc", True),
        ("a*b*c", False, "a..b..c", True),
        ("a*b*c", False, "a..c..b", False),
        ("*", False, "anything", True),
        ("a.b", False, "a.b", True),
        ("a.b", False, "axb", False),  # dots are literal outside regexes
        ("a+b", False, "a+b", True),
        ("a+b", False, "aab", False),
        (r"room\d+", True, "room12", True),
        (r"room\d+", True, "room12x", False),  # anchored at the end
        (r"room\d+", True, "myroom12", False),  # and at the start
        ("a|b", True, "a", True),
        ("a|b", True, "ab", False),  # the alternation is anchored as a whole
        ("(red|blue)-.*", True, "blue-7", True),
        ("(red|blue)-.*", True, "green-7", False),
    ],
)
def test_stream_matching(pattern: str, is_regex: bool, stream: str, expected: bool) -> None:
    validate_stream_pattern(pattern, is_regex)
    assert stream_matches(pattern, is_regex, stream) is expected


def test_covers_any_of_the_rules() -> None:
    rules = [("a", False), (r"b\d", True)]
    assert covers(rules, "a") and covers(rules, "b3")
    assert not covers(rules, "b") and not covers(rules, "ab3")
    assert not covers([], "a")


_names = st.text(alphabet="ab*.-", min_size=1, max_size=12)


@given(pattern=_names, stream=st.text(alphabet="ab.-", max_size=12))
def test_wildcards_agree_with_fnmatch(pattern: str, stream: str) -> None:
    # fnmatch knows only * here (no ?/[] in the alphabet): the same language, full match.
    assert stream_matches(pattern, False, stream) is fnmatch.fnmatchcase(stream, pattern)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(a+)+$", "nested repetition"),
        ("(a*)*", "nested repetition"),
        ("(?:a|aa)+b", "alternation inside repetition"),
        ("(?:a|a)*c", "alternation inside repetition"),
        ("(red|blue)-[a-z0-9]+", None),  # alternation outside a repeat is fine
        ("a*a*a*b", None),
        ("a*a*a*a*b", "at most 3 repeats"),
        ("((ab)*c)+", "nested repetition"),
        (r"(a)\1", "backreferences"),
        ("(?=a+)+", "nested repetition"),
        ("x" * 129, "longer than 128"),
        ("(", "not a valid regex"),
    ],
)
def test_catastrophic_and_invalid_regexes_are_refused_at_create(
    pattern: str, message: str | None
) -> None:
    if message is None:
        validate_stream_pattern(pattern, True)
    else:
        with pytest.raises(ValueError, match=message):
            validate_stream_pattern(pattern, True)


def test_accepted_regexes_match_quickly_on_the_longest_names() -> None:
    started = time.monotonic()
    for pattern in ("a*a*a*b", "(?:a)*(?:a)*.*c", "[ab]*[ab]*b?c"):
        validate_stream_pattern(pattern, True)
        assert not stream_matches(pattern, True, "a" * 128)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("bad", ["", "a b", "a/b", "ä", "a?"])
def test_wildcard_patterns_use_the_stream_name_alphabet(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_stream_pattern(bad, False)


@pytest.mark.parametrize(
    ("rules", "origin", "expected"),
    [
        ([], None, True),
        ([], "https://evil.example", True),
        (["https://app.example.com"], "https://app.example.com", True),
        (["https://app.example.com"], "https://APP.example.com", True),
        (["https://app.example.com"], "http://app.example.com", False),
        (["https://app.example.com"], "https://app.example.com:8443", False),
        (["https://app.example.com:8443"], "https://app.example.com:8443", True),
        (["https://app.example.com"], "https://app.example.com.evil.io", False),
        (["https://app.example.com"], None, False),
        (["https://app.example.com"], "null", False),
        (["example.com"], "http://example.com:3000", True),
        (["example.com"], "https://www.example.com", False),
        (["*.example.com"], "https://www.example.com", True),
        (["*.example.com"], "https://a.b.example.com", True),
        (["*.example.com"], "https://example.com", False),
        (["*.example.com"], "https://evilexample.com", False),
        (["https://*.example.com"], "http://www.example.com", False),
        (["localhost:8080"], "http://localhost:8080", True),
    ],
)
def test_origin_rules(rules: list[str], origin: str | None, expected: bool) -> None:
    normalized = [validate_origin_rule(r) for r in rules]
    assert origin_allowed(normalized, origin) is expected


@pytest.mark.parametrize("bad", ["ftp://x.com", "https://", "x.com:0", "*.*.com", "a b", "x:99999"])
def test_bad_origin_rules(bad: str) -> None:
    with pytest.raises(ValueError, match="allowedOrigins entry"):
        validate_origin_rule(bad)


@pytest.mark.parametrize(
    ("rules", "ip", "expected"),
    [
        ([], "1.2.3.4", True),
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["10.0.0.0/8"], "10.200.3.4", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["10.0.0.0/8"], "::ffff:10.0.0.1", True),  # IPv4-mapped
        (["2001:db8::/32"], "2001:db8::7", True),
        (["2001:db8::/32"], "2001:db9::7", False),
        (["10.0.0.0/8"], None, False),
        (["10.0.0.0/8"], "not-an-ip", False),
    ],
)
def test_ip_rules(rules: list[str], ip: str | None, expected: bool) -> None:
    assert ip_allowed([validate_ip_rule(r) for r in rules], ip) is expected


def test_ip_rule_normalisation_and_errors() -> None:
    assert validate_ip_rule(" 10.1.2.3/8 ") == "10.0.0.0/8"
    assert validate_ip_rule("::1") == "::1/128"
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        validate_ip_rule("10.0.0.0/33")
