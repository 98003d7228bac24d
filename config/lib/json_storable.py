"""JSON values both databases store: PostgreSQL's JSON refuses the NUL character (a DataError,
until now a 500 on whatever wrote it), SQLite's JSON functions stop at 1,000 levels. Run inputs,
webhook bodies, dataset rows and eval checks are checked with this before they are written."""

from __future__ import annotations

# Deeper values are refused: SQLite's JSON functions stop at 1,000 levels (a failed insert),
# and nobody compares answers nested this deep.
MAX_DEPTH = 64


def unstorable_value(value: object) -> str:
    """Why `value` cannot be stored ("" when it can): PostgreSQL's JSON refuses the
    NUL character, and values nested deeper than MAX_DEPTH are refused. Iterative, so that
    it cannot run out of stack itself."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return "holds a NUL character (\\u0000), which cannot be stored"
            continue
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
