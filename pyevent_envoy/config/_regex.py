"""RE2 regexes (Envoy's ``safe_regex``) compiled with Python's :mod:`re`.

Envoy compiles regexes with RE2, which has no backtracking constructs.  A
regex using one (backreferences, lookahead/lookbehind, atomic groups,
possessive quantifiers, conditionals) is rejected as Envoy rejects it.  RE2
syntax that Python spells differently is translated: ``\\z``, ``(?<name>``,
``\\Q...\\E``, ``\\x{HHHH}``, octal escapes and POSIX classes such as
``[[:alpha:]]``.  What has no Python equivalent here (Unicode classes
``\\pL``, the ungreedy flag ``U``, flags set in the middle of a regex) is
refused as unsupported.

Perl classes (``\\d``, ``\\w``, ``\\s``, ``\\b``) are ASCII-only, as in RE2.
"""

from __future__ import annotations

import re

__all__ = ["compile_re2"]

_MAX_REPEAT = 1000  # RE2's limit on {n,m} counts

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}

_SIMPLE_ESCAPES = set("aftnrvdDsSwW")  # valid in and out of classes, same meaning in both engines
_OUTSIDE_ONLY_ESCAPES = set("bBA")
_OCTAL = set("01234567")
_HEX = set("0123456789abcdefABCDEF")
_RE2_FLAGS = set("imsU")


def _codepoint(cp: int) -> str:
    if cp > 0x10FFFF:
        raise ValueError("invalid escape sequence: code point out of range")
    return f"\\U{cp:08x}"


class _Translator:
    def __init__(self, regex: str) -> None:
        self.src = regex
        self.i = 0
        self.out: list[str] = []

    def error(self, reason: str) -> ValueError:
        return ValueError(reason)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.src[j] if j < len(self.src) else ""

    # Escapes -------------------------------------------------------------------------------
    def escape(self, in_class: bool) -> str:
        """Translate the escape at self.i (a backslash); return the Python text."""
        src = self.src
        if self.i + 1 >= len(src):
            raise self.error("trailing backslash at end of regex")
        c = src[self.i + 1]
        start = self.i
        self.i += 2
        if c in _SIMPLE_ESCAPES:
            return "\\" + c
        if c in _OUTSIDE_ONLY_ESCAPES:
            if in_class:
                raise self.error(f"invalid escape sequence in character class: \\{c}")
            return "\\" + c
        if c == "z":
            if in_class:
                raise self.error("invalid escape sequence in character class: \\z")
            return "\\Z"
        if c in "123456789":
            if c in "89" or self.peek() not in _OCTAL:
                raise self.error(f"backreferences are not supported (RE2): \\{c}")
        if c in _OCTAL:
            digits = c
            while len(digits) < 3 and self.peek() in _OCTAL:
                digits += self.peek()
                self.i += 1
            return _codepoint(int(digits, 8))
        if c == "x":
            if self.peek() == "{":
                end = src.find("}", self.i)
                hexdigits = src[self.i + 1 : end] if end != -1 else ""
                if end == -1 or not hexdigits or any(h not in _HEX for h in hexdigits):
                    raise self.error(f"invalid escape sequence: {src[start:self.i + 1]}")
                self.i = end + 1
                return _codepoint(int(hexdigits, 16))
            if self.peek() in _HEX and self.peek(1) in _HEX:
                h = src[self.i : self.i + 2]
                self.i += 2
                return _codepoint(int(h, 16))
            raise self.error(f"invalid escape sequence: {src[start:self.i + 2]}")
        if c in "pP":
            raise self.error(f"Unicode character classes (\\{c}) are not supported by pyevent-envoy")
        if c == "Q":
            if in_class:
                raise self.error("\\Q...\\E inside a character class is not supported by pyevent-envoy")
            end = src.find("\\E", self.i)
            literal = src[self.i :] if end == -1 else src[self.i : end]
            self.i = len(src) if end == -1 else end + 2
            return re.escape(literal)
        if c == "E":
            return ""  # a stray \E is ignored by RE2
        if c.isascii() and c.isalnum():
            raise self.error(f"invalid escape sequence: \\{c}")
        return re.escape(c)

    # Character classes ---------------------------------------------------------------------
    def char_class(self) -> str:
        src = self.src
        start = self.i
        self.i += 1
        parts = ["["]
        if self.peek() == "^":
            parts.append("^")
            self.i += 1
        first = True
        while True:
            if self.i >= len(src):
                raise self.error(f"missing ]: {src[start:]}")
            ch = src[self.i]
            if ch == "]" and not first:
                self.i += 1
                parts.append("]")
                return "".join(parts)
            first = False
            if ch == "[" and self.peek(1) == ":":
                end = src.find(":]", self.i + 2)
                if end != -1:
                    name = src[self.i + 2 : end]
                    if name.startswith("^"):
                        raise self.error(
                            f"negated POSIX class [:{name}:] is not supported by pyevent-envoy"
                        )
                    if name not in _POSIX_CLASSES:
                        raise self.error(f"invalid character class range: [:{name}:]")
                    parts.append(_POSIX_CLASSES[name])
                    self.i = end + 2
                    continue
            if ch == "\\":
                parts.append(self.escape(in_class=True))
                continue
            if ch in "[&~|":
                # Characters Python may one day read as set operations: escape them.
                parts.append("\\" + ch)
                self.i += 1
                continue
            parts.append(ch)
            self.i += 1

    # Groups --------------------------------------------------------------------------------
    def group_open(self) -> str:
        src = self.src
        if self.peek(1) != "?":
            self.i += 1
            return "("
        rest = src[self.i + 2 :]
        if rest.startswith("P<") or rest.startswith("<") and not rest.startswith(("<=", "<!")):
            skip = 4 if rest.startswith("P<") else 3
            end = src.find(">", self.i + skip)
            name = src[self.i + skip : end] if end != -1 else ""
            if end == -1 or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise self.error(f"invalid named capture group: {src[self.i:end + 1 if end != -1 else None]}")
            self.i = end + 1
            return f"(?P<{name}>"
        if rest.startswith(("=", "!", "<=", "<!")):
            raise self.error("lookahead and lookbehind are not supported (RE2)")
        if rest.startswith("P="):
            raise self.error("backreferences are not supported (RE2)")
        if rest.startswith(">"):
            raise self.error("atomic groups are not supported (RE2)")
        if rest.startswith("("):
            raise self.error("conditionals are not supported (RE2)")
        if rest.startswith("#"):
            raise self.error("comments (?#...) are not supported (RE2)")
        m = re.match(r"([A-Za-z]*)(?:-([A-Za-z]*))?([:)])", rest)
        if m is None:
            raise self.error(f"invalid or unsupported perl operator: {src[self.i:self.i + 3]}")
        on, off, close = m.group(1), m.group(2) or "", m.group(3)
        flags = on + off
        bad = [f for f in flags if f not in _RE2_FLAGS]
        if bad or (m.group(2) is not None and not off) or not flags:
            raise self.error(f"invalid or unsupported perl operator: (?{m.group(0)}")
        if "U" in flags:
            raise self.error("the ungreedy flag U is not supported by pyevent-envoy")
        self.i += 2 + m.end()
        if close == ")":
            if self.out or off:
                raise self.error(
                    "flags are supported only at the start of the regex, like (?i)... "
                    "(scoped groups such as (?i:...) work anywhere)"
                )
            return f"(?{on})"
        return f"(?{on}{'-' + off if off else ''}:"

    # Quantifiers ---------------------------------------------------------------------------
    def check_possessive(self) -> None:
        if self.peek() == "+":
            raise self.error("possessive quantifiers are not supported (RE2)")

    def translate(self) -> str:
        src = self.src
        while self.i < len(src):
            ch = src[self.i]
            if ch == "\\":
                self.out.append(self.escape(in_class=False))
            elif ch == "[":
                self.out.append(self.char_class())
            elif ch == "(":
                self.out.append(self.group_open())
            elif ch in "*+?":
                self.i += 1
                self.out.append(ch)
                if self.peek() == "?":  # lazy
                    self.out.append("?")
                    self.i += 1
                self.check_possessive()
            elif ch == "{":
                m = re.compile(r"\{([0-9]+)(,([0-9]*))?\}").match(src, self.i)
                if m is None:
                    self.out.append("\\{")
                    self.i += 1
                    continue
                lo = int(m.group(1))
                hi = m.group(3)
                if lo > _MAX_REPEAT or (hi and int(hi) > _MAX_REPEAT) or (hi and int(hi) < lo):
                    raise self.error(f"invalid repetition size: {m.group(0)}")
                self.out.append(m.group(0))
                self.i = m.end()
                if self.peek() == "?":
                    self.out.append("?")
                    self.i += 1
                self.check_possessive()
            else:
                self.out.append(ch)
                self.i += 1
        return "".join(self.out)


def compile_re2(regex: str) -> re.Pattern:
    """Compile an RE2 regex as a Python pattern with the same meaning.

    Raises:
        ValueError: RE2 rejects the regex, or it uses RE2 syntax that
            pyevent-envoy does not support; the message says which.
    """
    if not isinstance(regex, str):
        raise TypeError("regex must be a str")
    python = _Translator(regex).translate()
    try:
        return re.compile(python, re.ASCII)
    except re.error as exc:
        raise ValueError(f"invalid regex {regex!r}: {exc}") from None
