"""UPDATE statements for the engine's hot path, without the ORM's query compiler.

Every step of every run writes a few rows. Building those UPDATEs through
QuerySet.update (cloning, resolving F() expressions, compiling WHERE trees)
cost more CPU than the database spent running them (docs/benchmarks.md), so
the engine writes them here. Values still go through each field's
`get_db_prep_save`, exactly as the ORM prepares them (JSON, aware datetimes
on SQLite), and every identifier is quoted by the backend; the same SQL runs
on PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.db import connection
from django.db.models import Model


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
    by its attname, such as `run_id`)."""
    statement, params = _update_statement(model, where, values, add)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def update_returning(
    model: type[Model],
    *,
    where: Mapping[str, object],
    values: Mapping[str, object] | None = None,
    add: Mapping[str, int] | None = None,
    returning: str,
) -> tuple[object, ...] | None:
    """`update` of at most one row, returning the `returning` SQL expressions
    evaluated on it, or None when no row matched."""
    statement, params = _update_statement(model, where, values, add)
    with connection.cursor() as cursor:
        cursor.execute(f"{statement} RETURNING {returning}", params)
        return cursor.fetchone()


def _update_statement(
    model: type[Model],
    where: Mapping[str, object],
    values: Mapping[str, object] | None,
    add: Mapping[str, int] | None,
) -> tuple[str, list[object]]:
    quote = connection.ops.quote_name
    assignments: list[str] = []
    params: list[object] = []
    for name, value in (values or {}).items():
        field = model._meta.get_field(name)
        assignments.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name, amount in (add or {}).items():
        column = quote(model._meta.get_field(name).column)
        assignments.append(f"{column} = {column} + %s")
        params.append(int(amount))
    conditions, where_params = _conditions(model, where)
    statement = (
        f"UPDATE {quote(model._meta.db_table)} SET {', '.join(assignments)} WHERE {conditions}"
    )
    return statement, params + where_params


def _conditions(model: type[Model], where: Mapping[str, object]) -> tuple[str, list[object]]:
    quote = connection.ops.quote_name
    parts: list[str] = []
    params: list[object] = []
    for name, value in where.items():
        field = model._meta.get_field(name)
        column = quote(field.column)
        if value is None:
            parts.append(f"{column} IS NULL")
        elif isinstance(value, Sequence) and not isinstance(value, str):
            parts.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            params += [field.get_db_prep_value(item, connection) for item in value]
        else:
            parts.append(f"{column} = %s")
            params.append(field.get_db_prep_value(value, connection))
    return " AND ".join(parts), params
