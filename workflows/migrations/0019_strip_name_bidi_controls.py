"""Names stored before the rule (config/lib/names.py) lose their bidi embedding, override and
isolate controls: workflows' names (the column and the draft's), the step titles of drafts and
versions (invisible characters only: a version's behaviour is unchanged), triggers', API
tokens', datasets' and checks' names, and the dataset name an eval keeps. A workflow or check
whose stripped name another one of its workspace or workflow already has becomes "name (2)"."""

import re

from django.db import migrations
from django.db.models import Q

BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
CONTROLS = [chr(point) for point in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def _clean(text: str) -> str:
    return BIDI_CONTROLS.sub("", text).strip()


def _holding(model, field: str):
    holding = Q()
    for control in CONTROLS:
        holding |= Q(**{f"{field}__contains": control})
    return model.objects.filter(holding)


def _free(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


def _clean_definition(definition: object, name: str | None = None) -> bool:
    """Strips the name and the step titles of a definition in place; True if it changed."""
    if not isinstance(definition, dict):
        return False
    changed = False
    if isinstance(definition.get("name"), str):
        cleaned = name if name is not None else _clean(definition["name"])
        changed = cleaned != definition["name"]
        definition["name"] = cleaned
    steps = definition.get("steps")
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and isinstance(step.get("title"), str):
            cleaned = _clean(step["title"])
            changed = changed or cleaned != step["title"]
            step["title"] = cleaned
    return changed


def strip_names(apps, schema_editor) -> None:
    Workflow = apps.get_model("workflows", "Workflow")
    renamed: dict[int, str] = {}
    for workflow in _holding(Workflow, "name").only("id", "workspace_id", "name"):
        taken = set(
            Workflow.objects.filter(workspace_id=workflow.workspace_id)
            .exclude(id=workflow.id)
            .values_list("name", flat=True)
        )
        old = workflow.name
        workflow.name = _free(_clean(old)[:190] or "Untitled workflow", taken)
        workflow.save(update_fields=["name"])
        renamed[workflow.id] = old
    # Drafts and versions: every one is read, since JSON's text differs between databases.
    for workflow in Workflow.objects.only("id", "name", "definition").iterator(chunk_size=500):
        definition = workflow.definition
        draft_name = definition.get("name") if isinstance(definition, dict) else None
        same = workflow.id in renamed and draft_name == renamed[workflow.id]
        if _clean_definition(definition, workflow.name if same else None):
            workflow.save(update_fields=["definition"])
    WorkflowVersion = apps.get_model("workflows", "WorkflowVersion")
    for version in WorkflowVersion.objects.only("id", "definition").iterator(chunk_size=500):
        if _clean_definition(version.definition):
            version.save(update_fields=["definition"])

    EvalCheck = apps.get_model("workflows", "EvalCheck")
    for check in _holding(EvalCheck, "name").only("id", "workflow_id", "name"):
        taken = set(
            EvalCheck.objects.filter(workflow_id=check.workflow_id)
            .exclude(id=check.id)
            .values_list("name", flat=True)
        )
        check.name = _free(_clean(check.name)[:90] or "Check", taken)
        check.save(update_fields=["name"])
    for label, field, empty in (
        ("Trigger", "name", ""),
        ("ApiToken", "name", "Token"),
        ("Dataset", "name", "Dataset"),
        ("Eval", "dataset_name", "Dataset"),
    ):
        model = apps.get_model("workflows", label)
        for row in _holding(model, field).only("id", field):
            setattr(row, field, _clean(getattr(row, field)) or empty)
            row.save(update_fields=[field])


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0018_name_direction"),
        ("accounts", "0011_strip_name_bidi_controls"),
    ]

    operations = [migrations.RunPython(strip_names, migrations.RunPython.noop)]
