from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from config.lib.names import validate_name_direction
from config.lib.site import site_url


class Workflow(models.Model):
    """A chain of steps; `definition` is the editable draft (the JSON format)."""

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=200, validators=[validate_name_direction])
    description = models.TextField(blank=True)
    definition = models.JSONField()
    archived_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Incremented by every draft write (compare-and-set, see services.workflow_edit_draft).
    draft_revision = models.PositiveIntegerField(default=0)
    # Who last changed each part of the draft: {field path: {"rev", "user", "name", "at"}},
    # e.g. "steps.triage.title"; it names the person in a conflict.
    draft_changes = models.JSONField(default=dict, blank=True)
    # A tool at /mcp for the workspace's tokens (workflows/integrations/mcp_server.py), set by an
    # admin. `mcp_name` is the tool's name: given at the first exposure and kept through renames
    # and a later un- and re-exposure, since agents' configurations and prompts name it.
    mcp_exposed = models.BooleanField(default=False)
    mcp_name = models.CharField(max_length=64, blank=True, default="")
    # Since when its finished runs are being deleted in the background, at an admin's request
    # (workflows/retention.py, `workflow_runs_delete_request`); None when no deletion is under way.
    runs_deleting_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"], name="workflow_name_unique_in_workspace"
            ),
            models.UniqueConstraint(
                fields=["workspace", "mcp_name"],
                condition=~Q(mcp_name=""),
                name="workflow_mcp_name_unique_in_workspace",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class EditorPresence(models.Model):  # noqa: DJ008 (a heartbeat row, never shown)
    """Who has a workflow's editor open: a heartbeat from the editor's sync poll."""

    workflow = models.ForeignKey(Workflow, models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="+")
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "user"], name="editor_presence_unique")
        ]


class WorkflowVersion(models.Model):
    """An immutable published snapshot. Runs pin the version they ran."""

    workflow = models.ForeignKey(Workflow, models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    summary = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
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
        # Parked: no lease, no worker thread, no broker message. `waiting_for`
        # says what wakes it (workflows/runtime/engine.py, "Waiting").
        WAITING = "waiting"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        API = "api"
        WEBHOOK = "webhook"
        SCHEDULE = "schedule"
        CLI = "cli"
        # Started by a `workflow` or `map` step of another run (its `parent`).
        WORKFLOW = "workflow"
        MCP = "mcp"
        # A row of an eval (workflows/evals/): in spend and the budget, not in
        # the usage page's "production" view.
        EVAL = "eval"

    class WaitingFor(models.TextChoices):
        NOTHING = "", "nothing"
        # Its next call fits the budget, but not next to the holds of calls in flight.
        BUDGET = "budget", "budget"
        # Its `workflow` or `map` step waits for the child runs it started.
        CHILDREN = "children", "sub-workflows"
        # Its `approval` step waits for a member's decision (or its timeout, `wake_at`).
        DECISION = "decision", "approval"
        # Its `wait` step waits until `wake_at`.
        TIME = "time", "a time"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
    # Not stored: True on the run services.run_start returns when its
    # idempotency key found an earlier run instead of creating one (a replay).
    found_existing: bool = False

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="runs")
    workflow = models.ForeignKey(Workflow, models.CASCADE, related_name="runs")
    # None for a test run of the draft; `definition` always holds what runs.
    version = models.ForeignKey(
        WorkflowVersion, models.SET_NULL, null=True, blank=True, related_name="runs"
    )
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
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The token that started an API run (its spend is the token's, not its creator's).
    api_token = models.ForeignKey(
        "ApiToken", models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    # NULL, not "": runs without a key must not collide in the unique constraint.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # "Resume from the failed step": finished steps of this run are reused.
    resumed_from = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # When the run's message was last sent to the workers; None while it waits
    # for one of its workspace's in-flight slots (fair sharing of the workers).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # While status is WAITING: what for and since when (kept after a cancel,
    # so that the last wait is not counted as running time either).
    waiting_for = models.CharField(
        max_length=20, choices=WaitingFor.choices, blank=True, default=""
    )
    waiting_since = models.DateTimeField(null=True, blank=True)
    # Time spent waiting by earlier waits: not running time, and not counted
    # against the run's time limit (its deadline moves by as much on waking).
    waited_ms = models.BigIntegerField(default=0)
    # While waiting for budget: the worst case of the call that waits.
    budget_needed_nanousd = models.BigIntegerField(null=True, blank=True)
    # While waiting: when beat wakes it (a `wait` step's time, an approval's timeout).
    wake_at = models.DateTimeField(null=True, blank=True)
    # Set by a wake-up that found the run not parked (still running): the run
    # does not park until it has looked again (workflows/runtime/waking.py).
    wake_pending = models.BooleanField(default=False)
    # A child run: the run, step and (for a `map`) item that started it.
    parent = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="children"
    )
    parent_step = models.CharField(max_length=64, blank=True)
    parent_item = models.PositiveIntegerField(null=True, blank=True)
    # How many runs above it: a top-level run is 0 (at most MAX_CALL_DEPTH).
    depth = models.PositiveSmallIntegerField(default=0)
    # A child run: the top-level run above it (None for a top-level run), whose
    # `descendants` counts it.
    root = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    # A top-level run: the child runs started below it at any depth so far, kept
    # under RUN_MAX_DESCENDANTS by one conditional UPDATE (workflows/runtime/children.py).
    descendants = models.PositiveIntegerField(default=0)
    # When its details (inputs, payload, outputs, its steps' messages, outputs and state, its
    # items') were blanked, by the workspace's retention or a deletion (workflows/retention.py).
    # The row, its steps' rows and their cost, tokens, model, latency and times stay: usage and
    # budgets count them.
    details_pruned_at = models.DateTimeField(null=True, blank=True)
    # When a member deleted it: its details are blanked and it is left out of every list and
    # page (404), but its spend stays on the usage page.
    deleted_at = models.DateTimeField(null=True, blank=True)
    # A failed run: when beat's failure notice took it (workflows/integrations/failure_alerts.py),
    # so that no later notice names it again.
    failure_notified_at = models.DateTimeField(null=True, blank=True)

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
            models.Index(fields=["workspace", "status"], name="run_workspace_status"),
            # Failed runs no notice has taken yet (beat's failure notices claim them).
            models.Index(
                fields=["finished_at"],
                condition=Q(status="failed", failure_notified_at__isnull=True),
                name="run_failure_unnotified",
            ),
            models.Index(
                fields=["wake_at"],
                condition=Q(status="waiting", wake_at__isnull=False),
                name="run_waiting_wake_at",
            ),
            # The reaper's look at parked runs by what they wait for: only the
            # parked ones are indexed, however many finished runs there are.
            models.Index(
                fields=["waiting_for", "workspace"],
                condition=Q(status="waiting"),
                name="run_waiting_for",
            ),
            # A root's descendants (Django's SET_NULL when a root is deleted): child runs only.
            models.Index(fields=["root"], condition=Q(root__isnull=False), name="run_root"),
            # The nightly prune's look for runs whose details are due: only the runs that
            # still have details are indexed, so it shrinks as they are pruned.
            models.Index(
                fields=["workspace", "finished_at"],
                condition=Q(details_pruned_at__isnull=True),
                name="run_details_kept",
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.workflow_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def duration_ms(self) -> int | None:
        """Running time from start to finish, without the time spent waiting."""
        if self.started_at and self.finished_at:
            return self.running_ms(self.finished_at)
        return None

    def running_ms(self, now: datetime) -> int:
        """Running time from start until `now` (or the finish), without the time spent waiting."""
        end = self.finished_at or now
        waited = self.waited_ms
        if self.waiting_since is not None:
            waited += max(0, int((end - self.waiting_since).total_seconds() * 1000))
        return (
            max(0, int((end - self.started_at).total_seconds() * 1000) - waited)
            if self.started_at
            else 0
        )

    @property
    def details_removed_after_days(self) -> int | None:
        """How many days after it finished its details were removed (None: they are kept)."""
        if self.details_pruned_at is None:
            return None
        finished = self.finished_at or self.created_at
        return max(0, (self.details_pruned_at - finished).days)

    @property
    def details_removed_note(self) -> str:
        """What the run page and the API say in place of removed details ("" if kept)."""
        days = self.details_removed_after_days
        if days is None:
            return ""
        plural = "s" if days != 1 else ""
        return f"Details removed after {days} day{plural} ({self.details_pruned_at:%Y-%m-%d})."

    @property
    def status_label(self) -> str:
        """The status as the pages show it: "Waiting for budget" rather than "Waiting"."""
        if self.status == self.Status.WAITING and self.waiting_for:
            return f"Waiting for {self.get_waiting_for_display()}"
        return self.get_status_display()


class StepRun(models.Model):
    """One step of one run: what was sent, what came back, what it cost."""

    class Status(models.TextChoices):
        RUNNING = "running"
        # Its call was not sent: the run waits (Run.waiting_for) and retries it on waking.
        WAITING = "waiting"
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
    # A waiting step kind's own record of its wait (the child runs it started,
    # the decision asked for, the time it waits until), kept after it ends.
    state = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="one_step_run_per_step")]
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.key} of run {self.run_id} ({self.status})"


class StepItem(models.Model):
    """One item of a `map` step: its input, and what its prompt or its child run gave.

    Each is committed as it finishes, so a resumed map redoes no finished item
    and pays no item twice."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        # Failed, with `on_item_error: skip`: null in its place in the output.
        SKIPPED = "skipped"

    run = models.ForeignKey(Run, models.CASCADE, related_name="items")
    step_key = models.CharField(max_length=64)
    index = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    # The run of the called workflow, for a map over a workflow.
    child_run = models.ForeignKey(Run, models.SET_NULL, null=True, blank=True, related_name="+")
    messages = models.JSONField(null=True, blank=True)
    model = models.CharField(max_length=60, blank=True)
    tokens_in = models.BigIntegerField(default=0)
    tokens_cached = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_nanousd = models.BigIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "step_key", "index"], name="one_step_item_per_index"
            )
        ]
        ordering = ["index"]

    def __str__(self) -> str:
        return f"item {self.index} of {self.step_key} of run {self.run_id} ({self.status})"


class Trigger(models.Model):
    """A webhook door into a workflow: `POST /hooks/<public_id>` starts a run.

    The public id is a capability (≥128 random bits), so it is scrubbed from
    logs. The Standard Webhooks secret must be known to verify signatures,
    so it is stored encrypted (workflows/integrations/triggers.py), never in clear; after
    a rotation the previous secret keeps working until `previous_expires_at`.
    """

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="triggers")
    workflow = models.ForeignKey(Workflow, models.CASCADE, related_name="triggers")
    public_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100, blank=True, validators=[validate_name_direction])
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True)
    previous_expires_at = models.DateTimeField(null=True, blank=True)
    signing_required = models.BooleanField(default=True)
    rate_limit_per_minute = models.PositiveIntegerField(default=60)
    # A fixed one-minute window, counted in the row so every process shares it.
    rate_window_start = models.DateTimeField(null=True, blank=True)
    rate_window_count = models.PositiveIntegerField(default=0)
    callback_url = models.URLField(max_length=2000, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name or f"Webhook {self.pk}"

    def url(self, request: HttpRequest | None = None) -> str:
        """The webhook's address; on a page (`request`), as config.lib.site.site_url says."""
        return site_url(request) + reverse("webhook_receive", args=[self.public_id])


class WebhookDelivery(models.Model):
    """One request to a trigger and what it got: shown as "recent deliveries"."""

    trigger = models.ForeignKey(Trigger, models.CASCADE, related_name="deliveries")
    received_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField()
    result = models.CharField(max_length=300)
    message_id = models.CharField(max_length=200, blank=True)
    run = models.ForeignKey(Run, models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["trigger", "-received_at"], name="delivery_trigger_recent")]

    def __str__(self) -> str:
        return f"{self.status_code} {self.result}"


class RunCallback(models.Model):
    """Where to POST a run's result once it finishes, and how that went."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    run = models.OneToOneField(Run, models.CASCADE, related_name="callback")
    trigger = models.ForeignKey(
        Trigger, models.SET_NULL, null=True, blank=True, related_name="callbacks"
    )
    url = models.URLField(max_length=2000)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="callback_due")]

    def __str__(self) -> str:
        return f"Callback of run {self.run_id} ({self.status})"


class FailureAlert(models.Model):
    """A workspace's "when a run fails" setting (workflows/integrations/failure_alerts.py)."""

    workspace = models.OneToOneField(Workspace, models.CASCADE, related_name="failure_alert")
    # Email the owners and admins.
    email = models.BooleanField(default=False)
    # POST the failed runs here, signed (Standard Webhooks) with the secret below.
    url = models.URLField(max_length=2000, blank=True)
    secret_encrypted = models.TextField(blank=True)
    # When it was last turned on: runs that failed before are never notified.
    since = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Failure alert of workspace {self.workspace_id}"

    @property
    def is_on(self) -> bool:
        return self.email or bool(self.url)


class FailureNotice(models.Model):
    """One tick's message about a workspace's failed runs: whether it was emailed, and its POST
    (the exact body, retried until delivered; `url` empty and status "none" without one)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"
        NONE = "none"

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="failure_notices")
    emailed = models.BooleanField(default=False)
    url = models.URLField(max_length=2000, blank=True)
    body = models.TextField()
    run_count = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="failure_notice_due")]

    def __str__(self) -> str:
        return f"Failure notice {self.pk} of workspace {self.workspace_id} ({self.status})"


class ApiToken(models.Model):
    """A workspace's Bearer token for /api/v1. Only its SHA-256 is stored."""

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, validators=[validate_name_direction])
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class StreamSlot(models.Model):  # noqa: DJ008 (a place held by an open stream, never shown)
    """One open server-sent event stream of a holder ("user:<id>" for a member's pages,
    "token:<id>" for an API token), one of its STREAMS_PER_USER numbered places: the unique
    number makes the cap exact across web processes (workflows/integrations/stream_slots.py).
    Deleted when its stream ends; renewed while it is open, so that the place of a process
    that died expires."""

    holder = models.CharField(max_length=40)
    number = models.PositiveSmallIntegerField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["holder", "number"], name="stream_slot_unique")
        ]


class Schedule(models.Model):
    """A cron trigger: starts the latest published version at each due time.

    `next_run_at` is the claim: the beat tick moves it forward with a
    conditional UPDATE, so two ticks never start the same due time twice.
    """

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="schedules")
    workflow = models.ForeignKey(Workflow, models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=100)
    # An IANA name such as "Europe/Paris": the cron is read in local time there.
    time_zone = models.CharField(max_length=64, default="UTC")
    inputs = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run = models.ForeignKey(Run, models.SET_NULL, null=True, blank=True, related_name="+")
    last_error = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="schedule_due")]

    def __str__(self) -> str:
        return f"{self.cron} ({self.time_zone})"


# Evals (workflows/evals/): datasets of inputs, checks, and runs of versions over them.


class Dataset(models.Model):
    """Rows of inputs (with an optional expected output) to run a workflow's versions on."""

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="+")
    workflow = models.ForeignKey(Workflow, models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200, validators=[validate_name_direction])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class DatasetRow(models.Model):
    dataset = models.ForeignKey(Dataset, models.CASCADE, related_name="rows")
    position = models.PositiveIntegerField()
    inputs = models.JSONField(default=dict)
    # None: no expected output (checks comparing with it then fail, saying so).
    expected = models.JSONField(null=True, blank=True)
    source_run = models.ForeignKey(Run, models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"Row {self.position} of {self.dataset_id}"


class EvalCheck(models.Model):
    """One pass/fail check of a workflow's evals: a kind (workflows/evals/checks.py) and its
    configuration, validated by the kind."""

    workflow = models.ForeignKey(Workflow, models.CASCADE, related_name="eval_checks")
    name = models.CharField(max_length=100, validators=[validate_name_direction])
    kind = models.CharField(max_length=30)
    config = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Eval(models.Model):
    """The draft and/or versions of a workflow run over a dataset, and checked."""

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        CANCELED = "canceled"

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="+")
    workflow = models.ForeignKey(Workflow, models.CASCADE, related_name="evals")
    # Deleting the dataset keeps its evals (their rows hold what they ran) and their name.
    dataset = models.ForeignKey(
        Dataset, models.SET_NULL, null=True, blank=True, related_name="evals"
    )
    dataset_name = models.CharField(max_length=200, blank=True)
    # What was compared, in order: "draft" or "v<number>".
    targets = models.JSONField(default=list)
    # The draft's revision when the eval started: the publish panel and the
    # publish rule trust an eval only of the draft as it still is.
    draft_revision = models.PositiveIntegerField(null=True, blank=True)
    # The checks as they were when it started (a later edit does not rewrite a result).
    checks = models.JSONField(default=list)
    concurrency = models.PositiveSmallIntegerField(default=4)
    estimate_nanousd = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # When `eval_advance` last looked at it (workflows/evals/execution.py).
    advanced_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workflow", "-created_at"], name="eval_workflow_recent")]

    def __str__(self) -> str:
        return f"Eval {self.pk} of {self.workflow_id}"


class EvalItem(models.Model):
    """One row of the dataset run by one target, and its check results."""

    class Status(models.TextChoices):
        PENDING = "pending"  # not started
        STARTED = "started"  # its run is in flight
        SCORING = "scoring"  # claimed by one advance, which runs the checks
        SCORED = "scored"

    eval = models.ForeignKey(Eval, models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    target = models.CharField(max_length=20)
    version = models.ForeignKey(
        WorkflowVersion, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The row as it was (editing the dataset later does not change a result).
    inputs = models.JSONField(default=dict)
    expected = models.JSONField(null=True, blank=True)
    run = models.ForeignKey(Run, models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # [{"name", "kind", "passed", "reason"}], in the eval's check order.
    results = models.JSONField(default=list)
    passed = models.BooleanField(null=True, blank=True)
    error = models.TextField(blank=True)
    judge_cost_nanousd = models.BigIntegerField(default=0)
    judge_tokens = models.BigIntegerField(default=0)
    # When its checks ran: the usage page counts its judge's cost on this UTC day.
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position", "id"]
        indexes = [
            models.Index(fields=["eval", "status"], name="evalitem_eval_status"),
            # The usage page's judge spend by day (workflows/billing/usage.py).
            models.Index(
                fields=["scored_at"], name="evalitem_judged", condition=Q(judge_tokens__gt=0)
            ),
        ]

    def __str__(self) -> str:
        return f"Row {self.position} {self.target} of eval {self.eval_id}"
