"""Each secret names the hosts it may be sent to; secrets saved before keep going anywhere
(`any_host`, shown on the Secrets page as a legacy setting to restrict), new ones do not."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0011_strip_name_bidi_controls"),
    ]

    operations = [
        migrations.AddField(
            model_name="workspacesecret",
            name="allowed_hosts",
            field=models.JSONField(blank=True, default=list),
        ),
        # True for the rows that exist now (they worked with any host), False from then on.
        migrations.AddField(
            model_name="workspacesecret",
            name="any_host",
            field=models.BooleanField(default=True),
        ),
        migrations.AlterField(
            model_name="workspacesecret",
            name="any_host",
            field=models.BooleanField(default=False),
        ),
    ]
