"""Ordered RE2 substitutions over untrusted text, fast: what redaction and fingerprinting run.

RE2 keeps every rule linear-time on hostile input. Its Python wrapper, though, encodes a str and
maps byte offsets back to characters on every call and every match, which made a failure's
fingerprint cost hundreds of microseconds. Three exact shortcuts:

- an ASCII text runs through the rules compiled for bytes: for ASCII, RE2's classes (\\d, \\s, \\w,
  \\b and case folding are ASCII-only in RE2) match the same spans, and every replacement is ASCII,
  so the text stays ASCII from rule to rule;
- on that path one RE2 Set pass tells which rules match the current text, and only those run;
- a constant replacement is spliced from RE2's spans directly, without the wrapper's match objects.

On str (non-ASCII text), a rule may name literals it cannot match without; when none is in the
text, it is skipped. A property test holds both paths to the rules applied one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import re2

Rule = tuple[str, str, tuple[str, ...]]  # pattern, replacement, literals (any one needed; empty: always run)


class Substitutions:
    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(rules)
        self._text = tuple((re2.compile(p), _constant(r), needs) for p, r, needs in self.rules)
        self._ascii = tuple((re2.compile(p.encode()), r.encode("ascii")) for p, r, _ in self.rules)
        self._which = None  # which rules match a text somewhere: one pass for all of them
        if self.rules:
            self._which = re2.Set.SearchSet(self._ascii[0][0].options)
            for index, (pattern, _) in enumerate(self._ascii):
                if self._which.Add(pattern.pattern) != index:
                    raise ValueError(f"rule {index} did not get its own index in the RE2 set")
            self._which.Compile()

    def apply(self, text: str) -> str:
        """Each rule in order on what the earlier ones left. Most rules match nothing in a given text: one
        RE2 Set pass finds the rules that match the current text, and only those run (then the Set looks
        again, at the rules after the one that changed the text)."""
        if not text.isascii():
            return self.apply_as_text(text)
        data = text.encode("ascii")
        after = 0
        while self._which is not None and (matching := self._which.Match(data)):
            found = [i for i in matching if i >= after]
            if not found:
                break
            first = min(found)
            pattern, replacement = self._ascii[first]
            data = _sub_bytes(pattern, replacement, data)
            after = first + 1
        return data.decode("ascii")

    def apply_as_text(self, text: str) -> str:
        """The plain path, on str: for non-ASCII text, and the reference the ASCII path is tested against."""
        for pattern, replacement, needs in self._text:
            if not needs or any(literal in text for literal in needs):
                text = pattern.sub(replacement, text)
        return text


_UNANCHORED = re2._Anchor.UNANCHORED


def _sub_bytes(pattern, replacement, data: bytes) -> bytes:
    """pattern.sub(replacement, data) for a constant replacement, without the wrapper's Python match
    objects: its own loop over RE2's spans (the same steps, empty matches included; a property test
    holds it to the wrapper). A template with group references goes through the wrapper."""
    if b"\\" in replacement:
        return pattern.sub(replacement, data)
    match = pattern._regexp.Match
    pieces: list[bytes] = []
    end, pos, endpos = 0, 0, len(data)
    while True:
        start, stop = match(_UNANCHORED, data, pos, endpos)[0]
        if start == -1:
            break
        pieces += (data[end:start], replacement)
        end = stop
        if pos == endpos:
            break
        pos = pos + 1 if pos == stop else stop
    if not pieces:
        return data
    pieces.append(data[end:])
    return b"".join(pieces)


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
