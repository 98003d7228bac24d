"""JSON values both databases store: PostgreSQL's JSON refuses the NUL character (a DataError,
until now a 500 on whatever wrote it), SQLite's JSON functions stop at 1,000 levels. Run inputs,
webhook bodies, dataset rows and eval checks are checked with this before they are written, and
refused. What runs produce (a step's output, messages and error, a streamed answer so far, a
run's output and error, an eval's check reasons) is not refused but made storable: `storable`.
PostgreSQL's JSON also refuses NaN and Infinity, which Python's `json.loads` reads from an
answer (`{"a": NaN}`); `storable` makes them null, as JavaScript's JSON.stringify does."""

from __future__ import annotations

import json
import math
import re
from typing import cast

# Deeper values are refused: SQLite's JSON functions stop at 1,000 levels (a failed insert),
# and nobody compares answers nested this deep.
MAX_DEPTH = 64


def unstorable_value(value: object) -> str:
    """Why `value` cannot be stored ("" when it can): PostgreSQL's JSON refuses the
    NUL character and NaN or Infinity, and values nested deeper than MAX_DEPTH are refused.
    Iterative, so that it cannot run out of stack itself."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return "holds a NUL character (\\u0000), which cannot be stored"
            continue
        if isinstance(node, float) and not math.isfinite(node):
            return "holds NaN or Infinity, which JSON cannot store"
        if isinstance(node, dict):
            children: list[object] = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            return f"is nested more than {MAX_DEPTH} levels deep"
        pending.extend((child, depth + 1) for child in children)
    return ""


# What a NUL character becomes in text a run produces: U+FFFD, the replacement character.
REPLACEMENT = "\ufffd"
# NUL escaped in JSON text: `\u0000` after an even number of backslashes (after an odd number,
# the backslash before it is itself escaped and the text is the six characters "\u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def storable[T](value: T) -> T:
    """`value` as both databases store it: every NUL character in its strings (dict keys
    included) replaced by U+FFFD, and every NaN or infinite number by None. SQLite would keep
    them and PostgreSQL refuse them, so the engine applies this wherever it records what a
    step produced: the run goes on with the value as stored, on either database.

    Cheap when there is nothing to replace (the usual case): a string is scanned in C, a list
    or dict walked once without building anything, and returned as it is (the same object).
    Only a value holding a NUL or such a number is rebuilt, through its JSON text (as stored:
    tuples become lists)."""
    if isinstance(value, str):
        return cast(T, value.replace("\x00", REPLACEMENT)) if "\x00" in value else value
    if not _unstorable_inside(value):
        return value
    text = _NUL_ESCAPE.sub(lambda m: m.group(1) + REPLACEMENT, json.dumps(value))
    return cast(T, json.loads(text, parse_constant=lambda _: None))


def _unstorable_inside(value: object) -> bool:
    """Whether a string in `value`, a key or a value at any depth, holds NUL, or a number in
    it is NaN or infinite. Iterative, so that a deeply nested answer cannot exhaust the stack."""
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, float):
            if not math.isfinite(node):
                return True
        elif isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list | tuple):
            pending.extend(node)
    return False
