"""Cron schedules: start the latest published version at each due time.

django-celery-beat is not used: it does not support Django 6.1. Instead one
beat entry (`schedules-tick`, every SCHEDULES_TICK_SECONDS) calls `tick()`,
which claims each due schedule with a conditional UPDATE of `next_run_at`
(from the due time it read to the following one) and starts the run in the
same transaction. Two beats, or two ticks that overlap, cannot both claim
a due time; the run's idempotency key (schedule id + due time) would stop a
second run anyway. A tick that dies before committing leaves the schedule
due, and the next tick starts it. After downtime, a schedule fires once for
the missed time and then continues from now (no burst of catch-up runs).
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime

from croniter import croniter
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from workflows import services
from workflows.builder.definition import InputError, coerce_inputs
from workflows.models import Run, Schedule, Workflow

log = logging.getLogger(__name__)


class ScheduleInvalid(Exception):
    """A cron expression, time zone or inputs that cannot be used; `field` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def cron_check(cron: str) -> str:
    """The cleaned expression (five fields: minute hour day month weekday), or ScheduleInvalid."""
    cleaned = " ".join(cron.split())
    if len(cleaned.split(" ")) != 5 or not croniter.is_valid(cleaned):
        raise ScheduleInvalid(
            "cron",
            "Use five fields: minute hour day-of-month month day-of-week, e.g. “0 9 * * 1-5”.",
        )
    return cleaned


def time_zone_check(name: str) -> str:
    name = name.strip() or "UTC"
    if name not in zoneinfo.available_timezones() and name != "UTC":
        raise ScheduleInvalid(
            "time_zone", f"Unknown time zone “{name}”: use a name such as Europe/Paris."
        )
    return name


def next_times(cron: str, time_zone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` due times after `after`, in UTC;
    the cron is read in local time of `time_zone`."""
    local = after.astimezone(zoneinfo.ZoneInfo(time_zone))
    it = croniter(cron, local)
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]


def _inputs_check(workflow: Workflow, inputs: object) -> dict[str, object]:
    if not isinstance(inputs, dict):
        raise ScheduleInvalid("inputs", 'Inputs must be a JSON object, e.g. {"topic": "otters"}.')
    version = services.latest_version(workflow)
    if version is not None:
        try:
            coerce_inputs(services.definition_parse(version.definition), inputs)
        except InputError as e:
            raise ScheduleInvalid("inputs", str(e)) from None
        except services.WorkflowInvalid:
            pass
    return inputs


def schedule_problems(
    *, workflow: Workflow, cron: str, time_zone: str, inputs: object
) -> dict[str, str]:
    """Every problem of a schedule's fields at once (field -> message), for a form to show.

    `inputs` None means they could not be read at all (the form says why) and are not checked here.
    """
    problems: dict[str, str] = {}
    checks: list[tuple[str, Callable[[], object]]] = [
        ("cron", lambda: cron_check(cron)),
        ("time_zone", lambda: time_zone_check(time_zone)),
    ]
    if inputs is not None:
        checks.append(("inputs", lambda: _inputs_check(workflow, inputs)))
    for field, check in checks:
        try:
            check()
        except ScheduleInvalid as e:
            problems[field] = e.message
    return problems


def _audit_view(schedule: Schedule) -> dict[str, object]:
    return {
        "cron": schedule.cron,
        "time_zone": schedule.time_zone,
        "inputs": schedule.inputs,
        "enabled": schedule.enabled,
    }


@transaction.atomic
def schedule_create(
    *,
    workflow: Workflow,
    cron: str,
    time_zone: str,
    inputs: object,
    enabled: bool = True,
    user: User | None,
) -> Schedule:
    """A new schedule; inputs are checked against the latest published version when there is one."""
    cron = cron_check(cron)
    time_zone = time_zone_check(time_zone)
    schedule = Schedule.objects.create(
        workspace_id=workflow.workspace_id,
        workflow=workflow,
        cron=cron,
        time_zone=time_zone,
        inputs=_inputs_check(workflow, inputs),
        enabled=enabled,
        next_run_at=next_times(cron, time_zone, timezone.now())[0],
        created_by=user,
    )
    audit_record(
        workspace=workflow.workspace_id,
        actor=user,
        action="schedule.create",
        target=schedule,
        after=_audit_view(schedule),
    )
    return schedule


@transaction.atomic
def schedule_update(
    *,
    schedule: Schedule,
    cron: str,
    time_zone: str,
    inputs: object,
    enabled: bool,
    user: User | None,
) -> Schedule:
    before = _audit_view(schedule)
    schedule.cron = cron_check(cron)
    schedule.time_zone = time_zone_check(time_zone)
    schedule.inputs = _inputs_check(schedule.workflow, inputs)
    schedule.enabled = enabled
    schedule.next_run_at = next_times(schedule.cron, schedule.time_zone, timezone.now())[0]
    schedule.save(update_fields=["cron", "time_zone", "inputs", "enabled", "next_run_at"])
    if before != _audit_view(schedule):
        audit_record(
            workspace=schedule.workspace_id,
            actor=user,
            action="schedule.edit",
            target=schedule,
            before=before,
            after=_audit_view(schedule),
        )
    return schedule


@transaction.atomic
def schedule_delete(*, schedule: Schedule, user: User | None) -> None:
    audit_record(
        workspace=schedule.workspace_id,
        actor=user,
        action="schedule.delete",
        target=schedule,
        before=_audit_view(schedule),
    )
    schedule.delete()


def tick(now: datetime | None = None, limit: int = 500) -> list[int]:
    """Start every due schedule once; returns the ids of the runs started (or found)."""
    now = now or timezone.now()
    due = list(
        Schedule.objects.filter(
            enabled=True, next_run_at__lte=now, workflow__archived_at__isnull=True
        )
        .order_by("next_run_at")
        .values_list("id", "next_run_at", "cron", "time_zone")[:limit]
    )
    started = []
    for schedule_id, due_at, cron, time_zone in due:
        assert due_at is not None  # next_run_at__lte above leaves out NULLs
        try:
            following = next_times(cron, time_zone, max(due_at, now))[0]
        except (ValueError, KeyError, zoneinfo.ZoneInfoNotFoundError) as e:
            Schedule.objects.filter(id=schedule_id).update(
                enabled=False, last_error=f"Disabled: {e}"[:500]
            )
            continue
        run_id = _fire(schedule_id, due_at, following)
        if run_id is not None:
            started.append(run_id)
    return started


def _fire(schedule_id: int, due_at: datetime, following: datetime) -> int | None:
    with transaction.atomic():
        claimed = Schedule.objects.filter(id=schedule_id, enabled=True, next_run_at=due_at).update(
            next_run_at=following
        )
        if claimed != 1:
            return None  # another tick took this due time
        schedule = Schedule.objects.select_related("workflow").get(id=schedule_id)
        try:
            with transaction.atomic():
                run = services.run_start(
                    workflow=schedule.workflow,
                    trigger=Run.Trigger.SCHEDULE,
                    inputs=schedule.inputs,
                    user=schedule.created_by,
                    idempotency_key=f"schedule:{schedule.id}:{due_at.isoformat()}",
                )
        except (services.NotPublished, services.WorkflowInvalid, InputError) as e:
            log.info("Schedule %s could not start a run: %s", schedule_id, e)
            Schedule.objects.filter(id=schedule_id).update(
                last_run_at=due_at, last_error=str(e)[:500]
            )
            return None
        Schedule.objects.filter(id=schedule_id).update(
            last_run_at=due_at, last_run=run, last_error=""
        )
        return run.id
