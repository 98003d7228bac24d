"""Every raw SQL statement of Stepwise, each a named function.

The ORM cannot say UPDATE ... RETURNING, nor UPDATE ... WHERE id = (SELECT
... FOR UPDATE SKIP LOCKED), and on the engine's hot path QuerySet.update
(cloning, resolving F() expressions, compiling WHERE trees) cost more CPU
than the database spent running the statement (docs/benchmarks.md). So these
statements are written here, and nowhere else.

Every value is a parameter, enum values included; values go through each
field's `get_db_prep_save` / `get_db_prep_value`, exactly as the ORM prepares
them (JSON, aware datetimes on SQLite), and every identifier is quoted by the
backend; the same SQL runs on PostgreSQL and SQLite (tests/test_sql.py runs
each function on the database the suite runs against).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from django.db import connection
from django.db.models import Field, Model

from accounts.models import BudgetMonth, Workspace
from workflows.models import FailureAlert, Run, RunCallback, Trigger, WorkflowVersion


def update(
    model: type[Model],
    *,
    where: Mapping[str, object],
    values: Mapping[str, object] | None = None,
    add: Mapping[str, int] | None = None,
) -> int:
    """UPDATE `model`'s rows matching every `where` equality: set `values`, add
    `add` to integer columns. Returns the number of rows updated.

    `where` and the keys of `values` and `add` are field names (a foreign key
    by its attname, such as `run_id`); a `where` value that is a list or a
    tuple matches any of its items, None matches NULL."""
    statement, params = _update_statement(model, where, values, add)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        count: int = cursor.rowcount
        return count


def output_write_if_leased(
    model: type[Model], *, where: Mapping[str, object], run_id: int, token: str, output: object
) -> int:
    """Set `output` on `model`'s rows matching `where` (a StepRun or a StepItem
    of run `run_id`), if the run's lease owner is still `token`: a streamed
    answer's text so far (workflows/runtime/lease.py). The ORM's join for the
    same UPDATE cost more CPU than a short answer's whole stream
    (docs/benchmarks.md). Returns the number of rows updated."""
    statement, params = _update_statement(model, where, {"output": output}, None)
    run = Run._meta
    statement += (
        f" AND EXISTS (SELECT 1 FROM {_quote(run.db_table)}"
        f" WHERE {_quote(run.pk.column)} = %s AND {_quote(_field(Run, 'lease_owner').column)} = %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, run_id, token])
        count: int = cursor.rowcount
        return count


# Runs ----------------------------------------------------------------------


def run_claim(
    *, run_id: int, token: str, now: datetime, lease_expires_at: datetime, deadline_at: datetime
) -> Run | None:
    """Take the lease of run `run_id` if it is queued, or running with an
    expired lease (its worker died), and load it: one statement, the engine's
    hottest. Sets `started_at` and `deadline_at` on the first claim only, and
    forgets `budget_needed_nanousd`: a claimed run waits for no budget yet (what
    a dead worker's map items waited for would be lent by an eval for nothing).
    Returns the run as updated, or None if it was not claimable."""
    table = _quote(Run._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    claimed = list(
        Run.objects.raw(
            f"UPDATE {table} SET status = %s, lease_owner = %s, lease_expires_at = %s, "
            "started_at = COALESCE(started_at, %s), deadline_at = COALESCE(deadline_at, %s), "
            "wake_pending = %s, budget_needed_nanousd = NULL "
            "WHERE id = %s AND status IN (%s, %s) "
            "AND (lease_expires_at IS NULL OR lease_expires_at < %s) RETURNING *",
            [
                Run.Status.RUNNING.value,
                token,
                adapt(lease_expires_at),
                adapt(now),
                adapt(deadline_at),
                False,
                run_id,
                Run.Status.QUEUED.value,
                Run.Status.RUNNING.value,
                adapt(now),
            ],
        )
    )
    return claimed[0] if claimed else None


def run_fence_reading_budget(
    *, run_id: int, token: str, lease_expires_at: datetime
) -> tuple[int | None] | None:
    """Extend the lease of a running run held by `token`, and read its
    workspace's budget: one statement. Returns (budget_nanousd,), or None if
    `token` no longer holds the running run."""
    row = _update_returning(
        Run,
        where={"id": run_id, "lease_owner": token, "status": Run.Status.RUNNING},
        values={"lease_expires_at": lease_expires_at},
        returning=(
            f"(SELECT budget_nanousd FROM {_quote(Workspace._meta.db_table)} "
            f"WHERE id = {_quote(Run._meta.db_table)}.workspace_id)"
        ),
    )
    return None if row is None else (cast(int | None, row[0]),)


def run_park(
    *, run_id: int, token: str, values: Mapping[str, object], unless_woken: bool = False
) -> bool | None:
    """Set `values` on a running run held by `token` (the engine parks it).
    Returns whether other runs of its workspace wait for an in-flight slot,
    or None if `token` no longer holds the running run, or (`unless_woken`)
    if a wake-up arrived since its claim (`wake_pending`)."""
    where: dict[str, object] = {"id": run_id, "lease_owner": token, "status": Run.Status.RUNNING}
    if unless_woken:
        where["wake_pending"] = False
    row = _update_returning(
        Run,
        where=where,
        values=values,
        returning=_has_waiting_queued(),
        returning_params=[Run.Status.QUEUED.value],
    )
    return None if row is None else bool(row[0])


def run_finish(
    *, run_id: int, token: str, values: Mapping[str, object]
) -> tuple[bool, bool] | None:
    """Set `values` on a running run held by `token` (the engine finishes it).
    Returns (whether it has a pending callback, whether other runs of its
    workspace wait for an in-flight slot), or None if `token` no longer holds
    the running run."""
    row = _update_returning(
        Run,
        where={"id": run_id, "lease_owner": token, "status": Run.Status.RUNNING},
        values=values,
        returning=(
            f"EXISTS (SELECT 1 FROM {_quote(RunCallback._meta.db_table)} "
            f"WHERE run_id = {_quote(Run._meta.db_table)}.id AND status = %s), "
            f"{_has_waiting_queued()}"
        ),
        returning_params=[RunCallback.Status.PENDING.value, Run.Status.QUEUED.value],
    )
    return None if row is None else (bool(row[0]), bool(row[1]))


def run_descendants_add(*, root_id: int, count: int, cap: int) -> bool:
    """Count `count` more child runs below the top-level run `root_id`, unless
    that would take it past `cap` (0: no cap). Returns whether they were
    counted. One conditional UPDATE: of two steps below one root taking the
    last places at once, one gets them (the row stays locked until the
    caller's transaction ends, which also takes the count back if it rolls
    back)."""
    table = _quote(Run._meta.db_table)
    limit = " AND descendants + %s <= %s" if cap else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET descendants = descendants + %s WHERE id = %s{limit}",
            [count, root_id, *((count, cap) if cap else ())],
        )
        return bool(cursor.rowcount)


def run_take_oldest_waiting(*, workspace_id: int, now: datetime) -> int | None:
    """Mark the workspace's oldest queued run not yet sent to the broker as
    sent at `now`, and return its id (None if none waits). One statement picks
    and marks it, so two callers never take the same run."""
    table = _quote(Run._meta.db_table)
    # PostgreSQL: a concurrent taker skips the row another one is taking.
    # SQLite has one writer at a time.
    skip_locked = (
        " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET enqueued_at = %s WHERE enqueued_at IS NULL AND id = ("
            f"SELECT id FROM {table} WHERE workspace_id = %s AND status = %s "
            f"AND enqueued_at IS NULL ORDER BY id LIMIT 1{skip_locked}) RETURNING id",
            [
                connection.ops.adapt_datetimefield_value(now),
                workspace_id,
                Run.Status.QUEUED.value,
            ],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def run_slots(*, workspace_id: int) -> tuple[int, int]:
    """How many of the workspace's runs are sent to the broker and not finished
    (queued there or running), and how many wait in the database for a slot.
    Asked on every run start, the webhook's hot path, where the ORM's
    aggregate cost more CPU than the statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(CASE WHEN enqueued_at IS NOT NULL THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN enqueued_at IS NULL AND status = %s THEN 1 ELSE 0 END), 0) "
            f"FROM {_quote(Run._meta.db_table)} WHERE workspace_id = %s AND status IN (%s, %s)",
            [
                Run.Status.QUEUED.value,
                workspace_id,
                Run.Status.QUEUED.value,
                Run.Status.RUNNING.value,
            ],
        )
        row = cursor.fetchone()
    return int(row[0]), int(row[1])


def runs_failed_claim(*, now: datetime, finished_since: datetime) -> list[tuple[int, int]]:
    """Mark as notified at `now` the top-level failed runs not yet notified that finished since
    `finished_since`, in workspaces whose failure alert is on and was on when they finished;
    return (run id, workspace id) of each. One statement marks and returns them: of two beats
    at once, the second finds them marked (on PostgreSQL it waits for the first's row locks,
    then re-reads the condition), so no run is notified twice."""
    table = _quote(Run._meta.db_table)
    alert = _quote(FailureAlert._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET failure_notified_at = %s "
            "WHERE status = %s AND failure_notified_at IS NULL AND finished_at >= %s "
            "AND parent_id IS NULL AND deleted_at IS NULL "
            f"AND EXISTS (SELECT 1 FROM {alert} WHERE {alert}.workspace_id = {table}.workspace_id "
            f"AND {alert}.since <= {table}.finished_at "
            f"AND ({alert}.email = %s OR {alert}.url <> %s)) "
            "RETURNING id, workspace_id",
            [adapt(now), Run.Status.FAILED.value, adapt(finished_since), True, ""],
        )
        return [(int(row[0]), int(row[1])) for row in cursor.fetchall()]


def _has_waiting_queued() -> str:
    """Whether runs of the run's workspace wait in the database for an
    in-flight slot; its one parameter is the queued status."""
    table = _quote(Run._meta.db_table)
    return (
        f"EXISTS (SELECT 1 FROM {table} AS waiting WHERE waiting.workspace_id = "
        f"{table}.workspace_id AND waiting.status = %s AND waiting.enqueued_at IS NULL)"
    )


# Versions ------------------------------------------------------------------


def workflow_latest_version(*, workflow_id: int) -> WorkflowVersion | None:
    """The workflow's highest-numbered published version, or None. Looked up on
    every run start, the webhook's hot path, where compiling the ORM's ordered
    query cost more CPU than the statement."""
    found = list(
        WorkflowVersion.objects.raw(
            f"SELECT * FROM {_quote(WorkflowVersion._meta.db_table)} "
            "WHERE workflow_id = %s ORDER BY number DESC LIMIT 1",
            [workflow_id],
        )
    )
    return found[0] if found else None


# Budget --------------------------------------------------------------------


def budget_month_settle(
    *, ledger_id: int, release_nanousd: int, spent_nanousd: int
) -> tuple[int, int, int, int | None] | None:
    """Take `release_nanousd` off the month's holds and add `spent_nanousd`
    to its spend. Returns the month's (workspace_id, spent, reserved) after
    the change and its workspace's budget, or None if there is no such month.
    The row stays locked until the caller's transaction ends."""
    row = _update_returning(
        BudgetMonth,
        where={"id": ledger_id},
        add={"reserved_nanousd": -release_nanousd, "spent_nanousd": spent_nanousd},
        returning=(
            "workspace_id, spent_nanousd, reserved_nanousd, "
            f"(SELECT budget_nanousd FROM {_quote(Workspace._meta.db_table)} "
            f"WHERE id = {_quote(BudgetMonth._meta.db_table)}.workspace_id)"
        ),
    )
    return None if row is None else cast(tuple[int, int, int, int | None], tuple(row))


# Triggers ------------------------------------------------------------------


def trigger_rate_window_count(*, trigger_id: int, window: datetime) -> int | None:
    """Count one request in the trigger's rate window starting at `window`:
    open that window with a count of 1, or add one to it if it is the current
    one. Returns the count after this request (None if there is no such
    trigger). One UPDATE, so two requests never both take the last slot."""
    at = connection.ops.adapt_datetimefield_value(window)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_quote(Trigger._meta.db_table)} SET rate_window_count = CASE "
            "WHEN rate_window_start = %s THEN rate_window_count + 1 ELSE 1 END, "
            "rate_window_start = %s WHERE id = %s RETURNING rate_window_count",
            [at, at, trigger_id],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


# Building blocks -----------------------------------------------------------


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, Field), f"{model.__name__}.{name} is not a column"
    return field


def _quote(name: str | None) -> str:
    assert name is not None
    return connection.ops.quote_name(name)


def _update_returning(
    model: type[Model],
    *,
    where: Mapping[str, object],
    values: Mapping[str, object] | None = None,
    add: Mapping[str, int] | None = None,
    returning: str,
    returning_params: Sequence[object] = (),
) -> tuple[object, ...] | None:
    """`update` of at most one row, returning the `returning` SQL expressions
    (with their `returning_params`) evaluated on it, or None when no row matched."""
    statement, params = _update_statement(model, where, values, add)
    with connection.cursor() as cursor:
        cursor.execute(f"{statement} RETURNING {returning}", params + list(returning_params))
        row: tuple[object, ...] | None = cursor.fetchone()
        return row


def _update_statement(
    model: type[Model],
    where: Mapping[str, object],
    values: Mapping[str, object] | None,
    add: Mapping[str, int] | None,
) -> tuple[str, list[Any]]:
    assignments: list[str] = []
    params: list[Any] = []
    for name, value in (values or {}).items():
        field = _field(model, name)
        assignments.append(f"{_quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name, amount in (add or {}).items():
        column = _quote(_field(model, name).column)
        assignments.append(f"{column} = {column} + %s")
        params.append(int(amount))
    conditions, where_params = _conditions(model, where)
    statement = (
        f"UPDATE {_quote(model._meta.db_table)} SET {', '.join(assignments)} WHERE {conditions}"
    )
    return statement, params + where_params


def _conditions(model: type[Model], where: Mapping[str, object]) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    for name, value in where.items():
        field = _field(model, name)
        column = _quote(field.column)
        if value is None:
            parts.append(f"{column} IS NULL")
        elif isinstance(value, Sequence) and not isinstance(value, str):
            parts.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            params += [field.get_db_prep_value(item, connection) for item in value]
        else:
            parts.append(f"{column} = %s")
            params.append(field.get_db_prep_value(value, connection))
    return " AND ".join(parts), params


# Connections -----------------------------------------------------------------


def connection_release(*, keep_unpooled: bool = True) -> None:
    """Give this thread's pooled connection back to the pool, before a wait on
    the network (an LLM call, a callback's POST) or between a thread's rare
    writes (the lease heartbeat), so waiting threads do not keep the pool's
    few connections from the ones with work. An unpooled connection is kept
    for the thread's next query unless `keep_unpooled=False`: a caller that
    waits up to a minute between queries (webhooks' `?wait=`) closes it rather
    than hold a PostgreSQL backend idle, as a new connection once a second
    costs less. Never inside a transaction, which holds its connection until
    it ends (closing would throw the transaction away)."""
    if connection.in_atomic_block:
        return
    if not keep_unpooled or connection.settings_dict.get("OPTIONS", {}).get("pool"):
        connection.close()
