"""Manual routing rules: their regex patterns are validated and compiled with RE2, never `re`.

RE2 matches in time linear in the input, whatever the pattern: `(a+)+$` cannot backtrack
catastrophically. What RE2 cannot run that way (backreferences, lookarounds) or would need too much
memory for (nested counted repetition) is rejected up front with the reason, as are patterns over
MAX_PATTERN_LENGTH characters. The gateway's own design ran `new RegExp(rule.pattern)` from the
database against user input; this is the fix.
"""

from __future__ import annotations

from functools import lru_cache

import re2

MAX_PATTERN_LENGTH = 512
MAX_PROGRAM_MEMORY = 1 << 20


class InvalidPattern(ValueError):
    pass


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str):
    if not pattern:
        raise InvalidPattern("the pattern is empty")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidPattern(f"the pattern has {len(pattern)} characters; at most {MAX_PATTERN_LENGTH} are allowed")
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_MEMORY
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        raise InvalidPattern(
            f"the pattern is not accepted by the linear-time regex engine (RE2): {reason}. Backreferences, "
            "lookarounds and very large repetitions are not supported"
        ) from None


def checked(pattern: str) -> str:
    """The pattern itself when RE2 runs it; else ValueError with the reason (what a validator raises)."""
    try:
        compile_pattern(pattern)
    except InvalidPattern as error:
        raise ValueError(str(error)) from None
    return pattern


def matches(pattern: str, text: str) -> bool:
    return compile_pattern(pattern).search(text) is not None
