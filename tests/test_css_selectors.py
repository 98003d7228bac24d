"""Every class and id a stylesheet names is used somewhere, and each design token has one home.

A selector is used when some template, script or Python module that emits
markup can put that class or id on an element: a `class="…"`/`id="…"`
attribute in templates/ (a `{{ … }}` inside a class name makes a prefix:
`badge-{{ run.status }}` uses `badge-` plus any word found in Python string
literals, such as the run statuses), a string literal in static/js/ or in
the htmx script the pages load (its own classes: `htmx-request`, …), or a
string literal in the product's Python (forms' widget attrs, format_html).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import django_htmx

ROOT = Path(__file__).resolve().parent.parent
CSS_DIR = ROOT / "static" / "css"
PRODUCT_PACKAGES = ("accounts", "workflows", "config")

# Named by a stylesheet but, as far as this check sees, put on no element: left
# from the first pass of issue 12 for review (remove the rule, or name where it
# is used). This list may only shrink; a test fails if one of them becomes used.
KNOWN_UNUSED = {
    *(".grid-3", ".grid-4", ".row-end", ".row-lg", ".row-top", ".stack-xl", ".stack-xs"),
    *(".sidebar-left", ".sidebar-wide", ".auth-card-wide", ".logo-lg"),
    *(".alert-danger", ".alert-debug", ".btn-link", ".card-body", ".card-footer", ".card-lg"),
    *(".divider", ".empty-state-plain", ".errorlist", ".form-actions-end", ".is-disabled"),
    *(".is-loading", ".is-selected", ".kbd", ".required-mark", ".stats-plain"),
    *(".text-center", ".text-lg", ".text-right", ".text-warning", ".w-full"),
}


def strip_comments(css: str) -> str:
    return re.sub(r"/\*.*?\*/", "", css, flags=re.S)


def selector_names(css: str) -> set[str]:
    """`.class` and `#id` names in the selectors (not the declarations) of a stylesheet."""
    names: set[str] = set()
    prelude = ""
    for char in strip_comments(css):
        if char in "{};":
            if char == "{" and not prelude.strip().startswith("@"):
                selector = re.sub(r"\[[^\]]*\]", "", prelude)  # attribute values are not names
                names.update(
                    m[0] + m[1] for m in re.findall(r"([.#])(-?[_a-zA-Z][\w-]*)", selector)
                )
            prelude = ""
        else:
            prelude += char
    return names


def custom_properties(css: str) -> set[str]:
    return set(re.findall(r"(--[\w-]+)\s*:", strip_comments(css)))


def python_strings() -> list[str]:
    strings: list[str] = []
    for package in PRODUCT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    strings.append(node.value)
    return strings


def template_files() -> list[Path]:
    files = list((ROOT / "templates").rglob("*.html"))
    for package in PRODUCT_PACKAGES:
        files += (ROOT / package).rglob("templates/**/*.html")
    return files


def script_files() -> list[Path]:
    htmx = Path(django_htmx.__file__).parent / "static" / "django_htmx"
    return list((ROOT / "static" / "js").rglob("*.js")) + list(htmx.glob("htmx-*.js"))


def used_names() -> tuple[set[str], set[str]]:
    """The names elements can carry, and the prefixes of names built from a variable."""
    used: set[str] = set()
    prefixes: set[str] = set()

    def add_attribute(kind: str, value: str) -> None:
        # vdiff-line-{% if … %}add{% elif … %}del{% endif %}: each branch completes the prefix
        for prefix, branches in re.findall(r"([\w-]*-)((?:\{%.*?%\}[\w-]*)+)", value):
            used.update(kind + prefix + branch for branch in re.findall(r"%\}([\w-]+)", branches))
        value = re.sub(r"\{%.*?%\}", " ", value)
        for word in value.split():
            if "{{" in word:
                prefix = word.split("{{", 1)[0]
                if prefix:
                    prefixes.add(kind + prefix)
            elif "}}" not in word:
                used.add(kind + word)

    markup = [path.read_text() for path in template_files()]
    strings = python_strings()
    for text in markup + strings:
        for attr, double, single in re.findall(r"""\b(class|id)=(?:"([^"]*)"|'([^']*)')""", text):
            add_attribute("." if attr == "class" else "#", double or single)
        # {% block main_class %}container-narrow{% endblock %} fills base.html's class="…"
        for value in re.findall(r"\{% block \w*class %\}(.*?)\{% endblock", text):
            add_attribute(".", value)
    for value in strings:  # widget attrs={"class": "…"} and the like
        for word in value.split():
            if re.fullmatch(r"-?[_a-zA-Z][\w-]*", word):
                used.update({"." + word, "#" + word})
    for path in script_files():
        for literal in re.findall(r""""([^"\n]*)"|'([^'\n]*)'|`([^`]*)`""", path.read_text()):
            text = "".join(literal)
            for word in re.findall(r"-?[_a-zA-Z][\w-]*", text):
                used.update({"." + word, "#" + word})
            for prefix in re.findall(r"([_a-zA-Z][\w-]*-)\$\{", text):
                prefixes.update({"." + prefix, "#" + prefix})
        script = path.read_text()
        for prefix in re.findall(r"""["'](?:[^"'\n]*\s)?([_a-zA-Z][\w-]*-)["']\s*\+""", script):
            prefixes.update({"." + prefix, "#" + prefix})
    words = {w for s in strings for w in re.findall(r"[\w-]+", s)}
    for prefix in prefixes:
        used.update(prefix + word for word in words)
    return used, prefixes


def unused_selectors(stylesheets: dict[str, str]) -> dict[str, set[str]]:
    used, _ = used_names()
    return {
        name: missing
        for name, css in stylesheets.items()
        if (missing := selector_names(css) - used - KNOWN_UNUSED)
    }


def stylesheets() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(CSS_DIR.glob("*.css"))}


def test_every_class_and_id_selector_is_used() -> None:
    assert unused_selectors(stylesheets()) == {}


def test_it_finds_a_planted_unused_selector() -> None:
    sheets = stylesheets()
    sheets["components.css"] += "\n.card .planted-never-used, #nowhere-id { color: red; }\n"
    assert unused_selectors(sheets) == {"components.css": {".planted-never-used", "#nowhere-id"}}


def test_it_reads_names_from_selectors_not_declarations() -> None:
    css = (
        '/* .in-comment */ a[href$=".pdf"], .x:hover > #y { color: #fff; margin: .5rem; }\n'
        "@media (max-width: 640px) { .z { --w: 1; } }"
    )
    assert selector_names(css) == {".x", "#y", ".z"}


def test_known_unused_only_lists_selectors_still_unused() -> None:
    used, _ = used_names()
    assert KNOWN_UNUSED & used == set()


def test_each_design_token_is_defined_in_tokens_css_only() -> None:
    sheets = stylesheets()
    tokens = custom_properties(sheets["tokens.css"])
    assert "--accent" in tokens
    redefined = {
        name: tokens & custom_properties(css)
        for name, css in sheets.items()
        if name != "tokens.css"
    }
    assert {name: found for name, found in redefined.items() if found} == {}
    assert all(
        ":root" not in strip_comments(css) for name, css in sheets.items() if name != "tokens.css"
    )
