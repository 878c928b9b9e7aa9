"""RE2 regexes as Python patterns, and Envoy format strings (header values, access-log formats)."""

from __future__ import annotations

import re
import warnings

import pytest

from pyevent_envoy.config._format import Command, parse_format
from pyevent_envoy.config._regex import compile_re2


@pytest.mark.parametrize(
    ("regex", "matches", "no_match"),
    [
        ("/users/[0-9]+", ["/users/1"], ["/users/", "/users/1/x"]),
        (r"/(?<id>\d+)", ["/12"], ["/a"]),
        (r"/(?P<id>\d+)", ["/12"], ["/a"]),
        (r"a\z", ["a"], ["a\n"]),
        (r"\Q.*+\E!", [".*+!"], ["aaa!"]),
        (r"\x{41}\x42", ["AB"], ["ab"]),
        (r"\101\0", ["A\x00"], ["A"]),
        (r"\12", ["\n"], ["12"]),
        ("[[:alpha:]]+[[:digit:]]", ["ab1"], ["a_1"]),
        ("[[:upper:][:space:]]+", ["A B"], ["a"]),
        ("[a[]+", ["a[a"], ["b"]),
        ("[a&&b]", ["&"], ["c"]),
        ("[]a]", ["]"], ["b"]),
        ("(?i)/api", ["/API"], ["/apx"]),
        ("/(?i:api)/X", ["/API/X"], ["/api/x"]),
        ("(?s).+", ["a\nb"], [""]),
        (r"\d+", ["123"], ["١٢٣"]),  # ASCII digits only, as in RE2
        (r"\w", ["a"], ["é"]),
        ("a{2,3}?", ["aa", "aaa"], ["a"]),
        ("a{,3}", ["a{,3}"], ["aaa"]),  # not a repetition in RE2: literal
        (r"\.\-\/", [".-/"], ["a-/"]),
    ],
)
def test_re2_translation(regex, matches, no_match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FutureWarning about nested sets
        pattern = compile_re2(regex)
    for s in matches:
        assert pattern.fullmatch(s), (regex, s)
    for s in no_match:
        assert not pattern.fullmatch(s), (regex, s)


@pytest.mark.parametrize(
    ("regex", "reason"),
    [
        (r"(a)\1", "backreferences are not supported (RE2)"),
        (r"(?P<x>a)(?P=x)", "backreferences"),
        (r"\8", "backreferences"),
        ("a(?=b)", "lookahead and lookbehind"),
        ("a(?!b)", "lookahead and lookbehind"),
        ("(?<=a)b", "lookahead and lookbehind"),
        ("(?<!a)b", "lookahead and lookbehind"),
        ("(?>a)", "atomic groups"),
        ("(a)(?(1)b)", "conditionals"),
        ("a(?#note)", "comments"),
        ("a*+", "possessive"),
        ("a++", "possessive"),
        ("a?+", "possessive"),
        ("a{2}+", "possessive"),
        ("a{1001}", "invalid repetition size"),
        ("a{2,1}", "invalid repetition size"),
        (r"a\Z", "invalid escape sequence: \\Z"),
        (r"\u0041", "invalid escape sequence: \\u"),
        (r"\pL", "Unicode character classes"),
        (r"\p{Greek}", "Unicode character classes"),
        ("(?U)a+", "ungreedy"),
        ("a(?i)b", "flags are supported only at the start"),
        ("(?z)a", "invalid or unsupported perl operator"),
        ("[[:nope:]]", "invalid character class range"),
        ("[[:^alpha:]]", "negated POSIX class"),
        ("[a", "missing ]"),
        ("a(", "invalid regex"),
        ("*a", "invalid regex"),
        ("a\\", "trailing backslash"),
        (r"\x{110000}", "out of range"),
        (r"\x4", "invalid escape sequence"),
    ],
)
def test_re2_rejections(regex, reason):
    with pytest.raises(ValueError) as info:
        compile_re2(regex)
    assert reason in str(info.value)


def test_compile_returns_ascii_pattern():
    assert compile_re2("a").flags & re.ASCII


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("plain", ("plain",)),
        ("", ()),
        ("100%%", ("100%",)),
        ("%%%%", ("%%",)),
        ("%PROTOCOL%", (Command("PROTOCOL"),)),
        ("a %REQ(x-a?x-b):10% b", ("a ", Command("REQ", "x-a?x-b", 10), " b")),
        ("%REQ(:path)%", (Command("REQ", ":path"),)),
        ("%START_TIME(%Y-%m-%d)%", (Command("START_TIME", "%Y-%m-%d"),)),
        ("%START_TIME%%RESPONSE_CODE%", (Command("START_TIME"), Command("RESPONSE_CODE"))),
        ("%RESP(x)%\n", (Command("RESP", "x"), "\n")),
    ],
)
def test_format_parses(text, parts):
    assert parse_format(text) == parts


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("50%", "no valid command operator at position 2"),
        ("%%%", "no valid command operator at position 2"),
        ("%req(x)%", "no valid command operator at position 0"),
        ("%REQ(a)(b)%", "no valid command operator at position 0"),
        ("%NOPE%", "%NOPE% is not supported by pyevent-envoy"),
        ("%REQ%", "REQ requires a header name"),
        ("%REQ()%", "REQ requires a header name"),
        ("%REQ(a?b?c)%", "more than one alternative header"),
        ("%REQ(a b)%", "invalid header name 'a b'"),
        ("%PROTOCOL(x)%", "PROTOCOL does not take any parameters or length"),
        ("%RESPONSE_CODE:3%", "RESPONSE_CODE does not take any parameters or length"),
        ("%START_TIME:3%", "START_TIME does not allow a length"),
    ],
)
def test_format_rejects(text, reason):
    with pytest.raises(ValueError) as info:
        parse_format(text)
    assert reason in str(info.value)
