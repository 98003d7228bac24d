"""Finds each step kind's templates in its own package (`steps/<kind>/templates/`).

A kind is not a Django app, so the app directories loader does not look in
it; this loader looks in the package of every kind in the registry, read
when a template is looked for (settings.TEMPLATES lists it).
"""

from __future__ import annotations

from pathlib import Path

from django.template.loaders.filesystem import Loader as FilesystemLoader

from workflows import steps


class Loader(FilesystemLoader):
    def get_dirs(self) -> list[str | Path]:
        return [Path(str(kind.__file__)).parent / "templates" for kind in steps.KINDS]
