"""Every way of turning escaping off is on a short list, each with its reason.

A new `|safe`, `mark_safe(`, `SafeString(` or `{% autoescape off %}` fails this test until
someone has checked that it only ever marks markup the server built from escaped parts,
and written down why here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

UNESCAPING = re.compile(
    r"\|\s*safe(?:seq)?\b|\bmark_safe\s*\(|\bSafeString\s*\(|\bSafeText\s*\("
    r"|\{%-?\s*autoescape\s+off\b|@register\.filter\([^)]*is_safe\s*=\s*True"
)

# (file relative to the repository, what matched) -> why it is safe.
ALLOWED: dict[tuple[str, str], str] = {
    (
        "templates/emails/runs_failed.txt",
        "{% autoescape off",
    ): (
        "a text/plain mail body (failed runs: workflow names, errors, links); never rendered as "
        "HTML, its HTML part (runs_failed.html) escapes"
    ),
    (
        "templates/emails/invitation.txt",
        "{% autoescape off",
    ): (
        "a text/plain mail body: HTML escaping would show &amp; and &#x27; to the reader; never "
        "rendered as HTML"
    ),
    (
        "templates/emails/verify_email.txt",
        "{% autoescape off",
    ): (
        "a text/plain mail body holding only the server-built confirmation link; never rendered "
        "as HTML"
    ),
    (
        "templates/emails/signup_attempt.txt",
        "{% autoescape off",
    ): (
        "a text/plain mail body holding only server-built login and reset links; never rendered "
        "as HTML"
    ),
    (
        "templates/registration/password_reset_email.html",
        "{% autoescape off",
    ): (
        "the text/plain body of Django's password-reset mail (PasswordResetForm's "
        "email_template_name), never rendered as HTML"
    ),
}


def _sources() -> list[Path]:
    files = [*ROOT.glob("templates/**/*.html"), *ROOT.glob("templates/**/*.txt")]
    for package in ("accounts", "workflows", "config"):
        files += [path for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts]
        files += [*(ROOT / package).rglob("templates/**/*.html")]
    return sorted(set(files))


def _findings() -> list[tuple[str, str, int]]:
    found = []
    for path in _sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in UNESCAPING.finditer(line):
                found.append((path.relative_to(ROOT).as_posix(), match.group(0), number))
    return found


def test_it_finds_no_unescaping_outside_the_reviewed_list() -> None:
    unreviewed = [
        f"{file}:{line}: {what}" for file, what, line in _findings() if (file, what) not in ALLOWED
    ]
    assert not unreviewed, (
        "Escaping is turned off here; escape the text instead, or, if this is markup the "
        "server built from "
        "escaped parts, add it to ALLOWED with the reason:\n" + "\n".join(unreviewed)
    )


def test_every_allowed_entry_is_still_there() -> None:
    present = {(file, what) for file, what, _ in _findings()}
    stale = [f"{file}: {what}" for file, what in ALLOWED if (file, what) not in present]
    assert not stale, "Remove these from ALLOWED, they no longer occur:\n" + "\n".join(stale)


def test_the_scan_sees_each_kind_of_unescaping() -> None:
    for line in (
        "{{ x|safe }}",
        "{{ x | safeseq }}",
        "return mark_safe(html)",
        "SafeString(text)",
        "{% autoescape off %}",
        "{%- autoescape off %}",
        "@register.filter(is_safe=True)",
    ):
        assert UNESCAPING.search(line), line
    for line in ("{{ x|safe_name }}", "unsafe(x)", "{% autoescape on %}", "mark_safely"):
        assert not UNESCAPING.search(line), line
