"""Ordered RE2 substitutions over untrusted text, fast: what redaction and fingerprinting run.

RE2 keeps every rule linear-time on hostile input. Its Python wrapper, though, encodes a str and
maps byte offsets back to characters on every call and every match, which made a failure's
fingerprint cost hundreds of microseconds. Two exact shortcuts:

- an ASCII text runs through the rules compiled for bytes: for ASCII, RE2's classes (\\d, \\s, \\w,
  \\b and case folding are ASCII-only in RE2) match the same spans, and every replacement is ASCII,
  so the text stays ASCII from rule to rule;
- a rule may name literals it cannot match without; when none is in the text, it is skipped.

A property test holds both paths to the same output.
"""

from __future__ import annotations

from collections.abc import Sequence

import re2

Rule = tuple[str, str, tuple[str, ...]]  # pattern, replacement, literals (any one needed; empty: always run)


class Substitutions:
    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(rules)
        self._text = tuple((re2.compile(p), _constant(r), needs) for p, r, needs in self.rules)
        self._ascii = tuple(
            (re2.compile(p.encode()), _constant(r.encode("ascii")), tuple(n.encode() for n in needs))
            for p, r, needs in self.rules
        )

    def apply(self, text: str) -> str:
        if text.isascii():
            data = text.encode("ascii")
            for pattern, replacement, needs in self._ascii:
                if not needs or any(literal in data for literal in needs):
                    data = pattern.sub(replacement, data)
            return data.decode("ascii")
        return self.apply_as_text(text)

    def apply_as_text(self, text: str) -> str:
        """The plain path, on str: for non-ASCII text, and the reference the ASCII path is tested against."""
        for pattern, replacement, needs in self._text:
            if not needs or any(literal in text for literal in needs):
                text = pattern.sub(replacement, text)
        return text


def _constant(replacement):
    """A replacement without group references as a function: the wrapper then skips parsing the
    template again for every match."""
    if "\\" in (replacement if isinstance(replacement, str) else replacement.decode("ascii")):
        return replacement
    return lambda _match: replacement


class AnyOf:
    """Whether any of the patterns occurs in a text, in one RE2 pass (ASCII text as bytes, as above)."""

    def __init__(self, patterns: Sequence[str]):
        joined = "|".join(f"(?:{p})" for p in patterns)
        self._text, self._ascii = re2.compile(joined), re2.compile(joined.encode())

    def search(self, text: str) -> bool:
        if text.isascii():
            return self._ascii.search(text.encode("ascii")) is not None
        return self._text.search(text) is not None
