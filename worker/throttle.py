"""Rate limits for warnings: during an outage, a line every few seconds, not one per event or retry."""

from __future__ import annotations

import time

WARN_EVERY_S = 10.0


class Throttle:
    """At most one `ready()` every `every_s` seconds."""

    def __init__(self, every_s: float = WARN_EVERY_S):
        self.every_s, self._last = every_s, float("-inf")

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True


class Repeats:
    """Lets `burst` lines of one kind through per `window_s`, counts the rest, and reports the count
    on the next line of that kind that gets through (`allow` returns it)."""

    def __init__(self, burst: int = 5, window_s: float = 10.0, kinds: int = 10_000):
        self.burst, self.window_s, self.kinds = burst, window_s, kinds
        self._seen: dict[object, list] = {}  # kind -> [window start, lines let through, lines held back]

    def allow(self, kind: object, now: float | None = None) -> int | None:
        """None: hold this line back; otherwise how many of its kind were held back before it."""
        now = time.monotonic() if now is None else now
        entry = self._seen.get(kind)
        if entry is None or now - entry[0] >= self.window_s:
            if entry is None and len(self._seen) >= self.kinds:  # bounded: forget the oldest kinds
                for old in sorted(self._seen, key=lambda k: self._seen[k][0])[: self.kinds // 2]:
                    del self._seen[old]
            held = entry[2] if entry else 0
            self._seen[kind] = [now, 1, 0]
            return held
        if entry[1] < self.burst:
            entry[1] += 1
            return 0
        entry[2] += 1
        return None
