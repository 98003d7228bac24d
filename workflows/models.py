from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace


class Workflow(models.Model):
    """A chain of steps; `definition` is the editable draft (the JSON format)."""

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    definition = models.JSONField()
    archived_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="workflow_name_unique_in_workspace")
        ]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(models.Model):
    """An immutable published snapshot. Runs pin the version they ran."""

    workflow = models.ForeignKey(Workflow, models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    summary = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="version_number_unique")
        ]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.workflow} v{self.number}"


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        API = "api"
        WEBHOOK = "webhook"
        SCHEDULE = "schedule"
        CLI = "cli"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="runs")
    workflow = models.ForeignKey(Workflow, models.CASCADE, related_name="runs")
    # None for a test run of the draft; `definition` always holds what runs.
    version = models.ForeignKey(WorkflowVersion, models.SET_NULL, null=True, blank=True, related_name="runs")
    definition = models.JSONField()
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    inputs = models.JSONField(default=dict)
    payload = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    tokens_in = models.BigIntegerField(default=0)
    tokens_cached = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_nanousd = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    # "Resume from the failed step": finished steps of this run are reused.
    resumed_from = models.ForeignKey("self", models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="run_idempotency_key_unique_per_workflow",
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="run_workspace_recent"),
            models.Index(fields=["workflow", "-created_at"], name="run_workflow_recent"),
            models.Index(fields=["status", "lease_expires_at"], name="run_status_lease"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.workflow_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None


class StepRun(models.Model):
    """One step of one run: what was sent, what came back, what it cost."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"

    run = models.ForeignKey(Run, models.CASCADE, related_name="steps")
    key = models.CharField(max_length=64)
    position = models.PositiveIntegerField()
    type = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices)
    messages = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    model = models.CharField(max_length=60, blank=True)
    tokens_in = models.BigIntegerField(default=0)
    tokens_cached = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_nanousd = models.BigIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Copied from an earlier run by "resume": not called and not paid again.
    reused = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="one_step_run_per_step")]
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.key} of run {self.run_id} ({self.status})"
