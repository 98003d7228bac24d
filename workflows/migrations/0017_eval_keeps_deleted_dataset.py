import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def name_from_dataset(apps, schema_editor):  # type: ignore[no-untyped-def]
    Eval = apps.get_model("workflows", "Eval")
    Dataset = apps.get_model("workflows", "Dataset")
    Eval.objects.update(
        dataset_name=Subquery(Dataset.objects.filter(id=OuterRef("dataset_id")).values("name")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0016_stream_slots"),
    ]

    operations = [
        migrations.AddField(
            model_name="eval",
            name="dataset_name",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.RunPython(name_from_dataset, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="eval",
            name="dataset",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="evals",
                to="workflows.dataset",
            ),
        ),
    ]
