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
