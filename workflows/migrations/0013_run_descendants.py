import django.db.models.deletion
from django.db import migrations, models
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce


def roots_of_existing_children(apps, schema_editor):
    """Each child run already there gets its top-level run, level by level
    (at most five): a child still running starts its own children counted on
    its root. Roots count only the children started from now on."""
    Run = apps.get_model("workflows", "Run")
    for depth in range(1, 6):
        above = Run.objects.filter(id=OuterRef("parent_id")).values("root_id")[:1]
        Run.objects.filter(depth=depth, parent__isnull=False).update(
            root_id=Coalesce(Subquery(above), F("parent_id"))
        )


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0012_evals"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="descendants",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="run",
            name="root",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="workflows.run",
            ),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(
                condition=models.Q(("root__isnull", False)), fields=["root"], name="run_root"
            ),
        ),
        migrations.RunPython(roots_of_existing_children, migrations.RunPython.noop),
    ]
