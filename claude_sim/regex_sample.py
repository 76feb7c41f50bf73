"""Strings that match a regular expression, for JSON Schema ``pattern`` fields.

Walks the parse tree of Python's own regex parser, so whatever ``re`` accepts is
understood the same way; lookarounds and back-references are skipped, and the caller
checks the result with ``re.search``.
"""

from __future__ import annotations

import random
import re
import re._constants as c  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
import string
from typing import Any

_PRINTABLE = string.ascii_letters + string.digits + "-_"
_CATEGORIES = {
    c.CATEGORY_DIGIT: string.digits,
    c.CATEGORY_NOT_DIGIT: string.ascii_letters,
    c.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    c.CATEGORY_NOT_WORD: "-. ",
    c.CATEGORY_SPACE: " ",
    c.CATEGORY_NOT_SPACE: _PRINTABLE,
}
MAX_REPEAT_EXTRA = 3


def sample(pattern: str, rng: random.Random) -> str | None:
    """A string matching ``pattern`` (``re.search`` semantics), or None if not found."""
    try:
        tree = sre_parse.parse(pattern)
    except re.error:
        return None
    for _ in range(5):
        out = _emit(tree, rng)
        if re.search(pattern, out):
            return out
    return None


def _emit(items: Any, rng: random.Random) -> str:
    return "".join(_emit_one(op, arg, rng) for op, arg in items)


def _emit_one(op: Any, arg: Any, rng: random.Random) -> str:
    if op is c.LITERAL:
        return chr(arg)
    if op is c.NOT_LITERAL:
        return rng.choice([ch for ch in _PRINTABLE if ord(ch) != arg])
    if op is c.ANY:
        return rng.choice(string.ascii_lowercase)
    if op is c.IN:
        return _emit_class(arg, rng)
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
        low, high, sub = arg
        top = low + MAX_REPEAT_EXTRA if high is c.MAXREPEAT else min(high, low + MAX_REPEAT_EXTRA)
        count = rng.randint(low, max(low, top))
        if low == 0 and count == 0 and top > 0 and rng.random() < 0.7:
            count = 1
        return "".join(_emit(sub, rng) for _ in range(count))
    if op is c.SUBPATTERN:
        return _emit(arg[-1], rng)
    if op is c.BRANCH:
        return _emit(rng.choice(arg[1]), rng)
    if op is getattr(c, "ATOMIC_GROUP", None):
        return _emit(arg, rng)
    if op is c.CATEGORY:
        return rng.choice(_CATEGORIES.get(arg, _PRINTABLE))
    return ""


def _emit_class(items: Any, rng: random.Random) -> str:
    negate = bool(items) and items[0][0] is c.NEGATE
    allowed: set[str] = set()
    for op, arg in items:
        if op is c.LITERAL:
            allowed.add(chr(arg))
        elif op is c.RANGE:
            low, high = arg
            allowed.update(chr(x) for x in range(low, min(high, low + 200) + 1))
        elif op is c.CATEGORY:
            allowed.update(_CATEGORIES.get(arg, _PRINTABLE))
    pool = [ch for ch in _PRINTABLE if ch not in allowed] if negate else sorted(allowed)
    return rng.choice(pool) if pool else ""
