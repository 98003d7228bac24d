"""Rewrite module paths after workflows/ was split into packages (issue 12).

Run it on a branch that still names the old flat modules, after rebasing onto
the split: `python -m dev.rewrite_imports [paths...]` (default: the whole
checkout). It rewrites `from workflows import x, y`, dotted paths
(`workflows.engine.reap`) and file paths in comments and docs
(`workflows/engine.py`); then run `ruff check --fix` and `ruff format`.
Idempotent: new paths are left as they are.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Old module -> new module (dotted, from the repository root).
MOVES = {
    "workflows.definition": "workflows.builder.definition",
    "workflows.editing": "workflows.builder.editing",
    "workflows.draft_changes": "workflows.builder.draft_changes",
    "workflows.versions": "workflows.builder.versions",
    "workflows.starters": "workflows.builder.starters",
    "workflows.views": "workflows.pages.views",
    "workflows.run_views": "workflows.pages.run_views",
    "workflows.editor": "workflows.pages.editor",
    "workflows.forms": "workflows.pages.forms",
    "workflows.engine": "workflows.runtime.engine",
    "workflows.dispatch": "workflows.runtime.dispatch",
    "workflows.flow": "workflows.runtime.flow",
    "workflows.llm": "workflows.llm.client",
    "workflows.tokens": "workflows.llm.tokens",
    "workflows.pricing": "workflows.llm.pricing",
    "workflows.schema_validation": "workflows.llm.schema_validation",
    "workflows.budget": "workflows.billing.budget",
    "accounts.usage": "workflows.billing.usage",
    "accounts.charts": "workflows.billing.charts",
    "workflows.webhooks": "workflows.integrations.webhooks",
    "workflows.callbacks": "workflows.integrations.callbacks",
    "workflows.schedules": "workflows.integrations.schedules",
    "workflows.triggers": "workflows.integrations.triggers",
    "workflows.trigger_views": "workflows.integrations.trigger_views",
    "workflows.api": "workflows.integrations.api",
    "workflows.api_auth": "workflows.integrations.api_auth",
    "workflows.shown_once": "workflows.integrations.shown_once",
}

# An old module whose name is now a package (workflows.llm): its new children
# are not old names.
_CHILDREN = {
    old: sorted({new.rpartition(".")[2] for new in MOVES.values() if new.startswith(old + ".")})
    for old in MOVES
}


def _old(module: str) -> str:
    children = "|".join(_CHILDREN[module])
    # Now a package: rewritten only where it is followed by an old attribute or import.
    guard = rf"(?=\.(?!(?:{children})\b)\w| import (?!(?:{children})\b)\w)" if children else ""
    return re.escape(module) + guard


_NAMES = "|".join(_old(m) for m in sorted(MOVES, key=len, reverse=True))
# Not after a word character, a dot or a slash (so `workflows.steps.llm` and
# `templates/workflows/...` are left alone), and not followed by more of a name.
DOTTED = re.compile(rf"(?<![\w./])({_NAMES})(?![\w])")
PATHS = re.compile(
    r"(?<![\w./])(" + "|".join(re.escape(m.replace(".", "/")) for m in MOVES) + r")\.py\b"
)
FROM_IMPORT = re.compile(
    r"^(?P<indent>\s*)from (?P<pkg>workflows|accounts) import "
    r"(?P<names>[\w, ]+?)(?P<tail>\s*(#.*)?)$"
)


def _from_import(match: re.Match[str]) -> str:
    indent, pkg, tail = match["indent"], match["pkg"], match["tail"] or ""
    groups: dict[str, list[str]] = {}
    for name in (n.strip() for n in match["names"].split(",")):
        if not name:
            continue
        bare = name.split(" as ")[0].strip()
        new = MOVES.get(f"{pkg}.{bare}")
        if new is None:
            groups.setdefault(pkg, []).append(name)
            continue
        parent, _, leaf = new.rpartition(".")
        groups.setdefault(parent, []).append(name if leaf == bare else f"{leaf} as {name}")
    lines = [f"{indent}from {parent} import {', '.join(names)}" for parent, names in groups.items()]
    lines[-1] += tail
    return "\n".join(lines)


def rewrite(text: str) -> str:
    out = []
    for line in text.split("\n"):
        m = FROM_IMPORT.match(line)
        line = _from_import(m) if m else DOTTED.sub(lambda d: MOVES[d[1]], line)
        line = PATHS.sub(lambda m: MOVES[m[1].replace("/", ".")].replace(".", "/") + ".py", line)
        out.append(line)
    return "\n".join(out)


SUFFIXES = {".py", ".md", ".toml", ".html", ".txt", ".cfg", ".yml", ".yaml", ".js", ".css"}
SKIP = {".venv", ".git", "node_modules", "var", "staticfiles", "stepwise.egg-info"}


def main(paths: list[str]) -> None:
    roots = [Path(p) for p in paths] or [Path(".")]
    for root in roots:
        files = [root] if root.is_file() else root.rglob("*")
        for path in files:
            if any(part in SKIP for part in path.parts) or not path.is_file():
                continue
            if path.suffix not in SUFFIXES and path.name not in {"Makefile", "Procfile"}:
                continue
            if path.resolve() == Path(__file__).resolve():
                continue
            text = path.read_text()
            new = rewrite(text)
            if new != text:
                path.write_text(new)
                print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
