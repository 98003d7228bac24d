"""Names stored before the rule (config/lib/names.py) lose their bidi embedding, override and
isolate controls: a person's name and a workspace's. Audit entries are append-only: they keep
what was recorded, and the audit log shows their labels in <bdi>."""

import re

from django.db import migrations
from django.db.models import Q

BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
CONTROLS = [chr(point) for point in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def _strip_column(model, field: str, empty: str) -> None:
    holding = Q()
    for control in CONTROLS:
        holding |= Q(**{f"{field}__contains": control})
    for row in model.objects.filter(holding).only("id", field):
        setattr(row, field, BIDI_CONTROLS.sub("", getattr(row, field)).strip() or empty)
        row.save(update_fields=[field])


def strip_names(apps, schema_editor) -> None:
    _strip_column(apps.get_model("accounts", "User"), "name", "")
    _strip_column(apps.get_model("accounts", "Workspace"), "name", "Workspace")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0010_name_direction")]

    operations = [migrations.RunPython(strip_names, migrations.RunPython.noop)]
