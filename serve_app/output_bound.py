"""Right-sized ``max_tokens`` per kind of call, so the budget books output that will be used."""

from __future__ import annotations

from collections import deque


class OutputBound:
    """A right-sized ``max_tokens`` per kind of call, learned from its answers.

    The API reserves ``max_tokens`` of OTPM for a call's duration when it counts output up
    front, so a generous ``max_tokens`` books budget that is never used. The bound is 1.25x
    the longest recent answer of the kind (at least ``floor``, at most what was asked); an
    answer cut at the bound is retried with the full ``max_tokens`` and resets the bound.
    """

    def __init__(self, window: int = 50, factor: float = 1.25, floor: int = 256) -> None:
        self._seen: dict[str, deque[int]] = {}
        self._window = window
        self._factor = factor
        self._floor = floor

    def bound(self, tag: str, asked: int) -> int:
        seen = self._seen.get(tag)
        if not tag or not seen or len(seen) < 3:
            return asked
        return max(1, min(asked, max(self._floor, round(max(seen) * self._factor))))

    def learn(self, tag: str, produced: int, *, truncated: bool) -> None:
        if truncated:
            self._seen.pop(tag, None)
        elif tag:
            self._seen.setdefault(tag, deque(maxlen=self._window)).append(produced)
