"""htmx before custom JavaScript (issue 12): what htmx does is not written again in static/js/."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
TEMPLATES = ROOT / "templates"


def template_files() -> list[Path]:
    """The site's templates and those in packages (a step kind's panel, in its package)."""
    return [
        *TEMPLATES.rglob("*.html"),
        *(ROOT / "workflows").rglob("templates/**/*.html"),
        *(ROOT / "accounts").rglob("templates/**/*.html"),
    ]


def test_no_template_asks_for_a_partial_by_query_string() -> None:
    """Partials are chosen by request.htmx.target, not by ?partial=… in the address."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in template_files()
        if re.search(r"[?&](amp;)?partial=", path.read_text())
    ]
    assert offenders == []


def test_no_page_loads_a_script_from_another_site() -> None:
    """htmx and idiomorph are served from static/ (vendored, with their licences)."""
    for path in template_files():
        assert not re.search(r"<script[^>]+src=\"(https?:)?//", path.read_text()), path
    vendored = Path(settings.BASE_DIR) / "static" / "vendor" / "idiomorph"
    assert (vendored / "LICENSE").read_text().startswith("Zero-Clause BSD")
    assert (vendored / "idiomorph-ext.min.js").stat().st_size > 0


SCRIPTS = Path(settings.BASE_DIR) / "static" / "js"
MAX_NON_BLANK_LINES = 300
DEFINES_CODE = re.compile(r"\bfunction\b|=>|\baddEventListener\(")


def scripts() -> dict[str, str]:
    """Our own JavaScript: everything under static/js (vendored libraries live in static/vendor)."""
    return {str(p.relative_to(SCRIPTS)): p.read_text() for p in sorted(SCRIPTS.rglob("*.js"))}


def top_level_statements(source: str) -> list[tuple[int, list[str]]]:
    """(index of its first line, its lines) for each top-level statement of a script.

    A statement starts on an unindented line that is not blank, not a comment and does not
    close a bracket, and runs until the next one.
    """
    lines = source.splitlines()
    starts = [
        i
        for i, line in enumerate(lines)
        if line.strip()
        and not line[0].isspace()
        and not line.startswith(("//", "/*", "*", "}", ")", "]"))
    ]
    return [
        (start, lines[start:end])
        for start, end in zip(starts, [*starts[1:], len(lines)], strict=True)
    ]


def undocumented(source: str) -> list[str]:
    """Top-level functions and listeners without a one-line `//` comment directly above them.

    The rule: a top-level statement that defines a function (`function`, `=>`) or registers a
    listener (`addEventListener`) has a `//` comment on the line directly above it, saying why
    htmx cannot do it, and that comment is one line (the line above it is not a comment).
    Code nested inside such a statement is covered by its comment.
    """
    comments = {i for i, line in enumerate(source.splitlines()) if line.lstrip().startswith("//")}
    return [
        statement[0]
        for start, statement in top_level_statements(source)
        if any(DEFINES_CODE.search(line) for line in statement)
        and not (start - 1 in comments and start - 2 not in comments)
    ]


def test_custom_javascript_stays_within_300_non_blank_lines() -> None:
    counts = {
        name: sum(1 for line in text.splitlines() if line.strip())
        for name, text in scripts().items()
    }
    assert sum(counts.values()) <= MAX_NON_BLANK_LINES, counts


def test_each_function_and_listener_says_in_one_comment_line_why_htmx_cannot_do_it() -> None:
    offenders = {name: found for name, text in scripts().items() if (found := undocumented(text))}
    assert offenders == {}


def test_scripts_are_modules_so_no_wrapper_hides_their_functions() -> None:
    """A module has its own scope, so no IIFE wraps the code into one statement with one comment."""
    base = (TEMPLATES / "base.html").read_text()
    for name, text in scripts().items():
        assert f"""<script src="{{% static 'js/{name}' %}}" type="module"></script>""" in base
        assert not [s for _, s in top_level_statements(text) if s[0].startswith(("(", "!", ";"))], (
            name
        )


def test_the_comment_rule_finds_what_it_should() -> None:
    source = """/* A header. */
// Why this listener.
document.addEventListener("click", (event) => {
  go(event);
});
const LIMIT = 3;
function bare() {
  return 1;
}
// One line
// and a second one.
const arrow = (x) => x + 1;
// Fine: one line.
async function fine() {}
window.addEventListener("pageshow", () => {});
"""
    assert undocumented(source) == [
        "function bare() {",
        "const arrow = (x) => x + 1;",
        'window.addEventListener("pageshow", () => {});',
    ]
