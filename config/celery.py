"""The Celery application: workers execute runs, beat drives the reaper.

Messages carry ids only; the database holds every run's state, so no result
backend is configured and a lost or duplicated message is harmless.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("stepwise")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
