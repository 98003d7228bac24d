from django.db import migrations, models
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce


def scored_at_backfill(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    """Rows scored before this field existed: their run's end (scoring follows it within a
    poll), else their eval's end or start. The usage page counts their judges on that day."""
    EvalItem = apps.get_model("workflows", "EvalItem")
    Run = apps.get_model("workflows", "Run")
    Eval = apps.get_model("workflows", "Eval")
    evaluation = Eval.objects.filter(id=OuterRef("eval_id"))
    EvalItem.objects.filter(status="scored", scored_at__isnull=True).update(
        scored_at=Coalesce(
            Subquery(Run.objects.filter(id=OuterRef("run_id")).values("finished_at")[:1]),
            Subquery(evaluation.values("finished_at")[:1]),
            Subquery(evaluation.values("created_at")[:1]),
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0014_workflow_runs_deleting_since"),
    ]

    operations = [
        migrations.AddField(
            model_name="evalitem",
            name="scored_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="evalitem",
            index=models.Index(
                condition=models.Q(("judge_tokens__gt", 0)),
                fields=["scored_at"],
                name="evalitem_judged",
            ),
        ),
        migrations.RunPython(scored_at_backfill, migrations.RunPython.noop),
    ]
