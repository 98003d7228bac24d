"""Datasets: made from rows, from past runs, or from an uploaded CSV or JSONL file.

An import is all or nothing: every row is read and checked against the
workflow's inputs first, and the problems are reported by line and column;
only a file without any is stored. Limits (settings, docs/evals.md):
DATASET_MAX_ROWS rows, DATASET_MAX_UPLOAD_BYTES bytes per upload.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import User
from config.lib.json_storable import unstorable_value
from config.lib.names import name_direction_problem
from workflows import services
from workflows.builder.definition import InputError, coerce_inputs
from workflows.models import Dataset, DatasetRow, Run, Workflow

EXPECTED_COLUMN = "expected"


@dataclass(frozen=True)
class RowProblem:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class DatasetInvalid(Exception):
    """Nothing was stored; `problems` says where and why (at most 50 are kept)."""

    def __init__(self, message: str, problems: Sequence[RowProblem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems)[:50]

    def details(self) -> list[dict[str, object]]:
        return [{"line": p.line, "column": p.column, "message": p.message} for p in self.problems]


@dataclass(frozen=True)
class NewRow:
    inputs: dict[str, object]
    expected: object = None
    source_run_id: int | None = None


def _refused(problems: Sequence[RowProblem]) -> str:
    return f"{len(problems)} problem{'s' if len(problems) != 1 else ''}; nothing was imported."


def _limit_rows(count: int) -> None:
    if count == 0:
        raise DatasetInvalid("A dataset needs at least one row.")
    if count > settings.DATASET_MAX_ROWS:
        raise DatasetInvalid(
            f"A dataset holds at most {settings.DATASET_MAX_ROWS} rows; this one has {count}."
        )


def _checked(workflow: Workflow, rows: Iterable[tuple[int, NewRow]]) -> list[NewRow]:
    """The rows with their inputs typed as the draft declares them; every bad one reported."""
    definition = services.definition_parse(workflow.definition, workflow=workflow)
    kept: list[NewRow] = []
    problems: list[RowProblem] = []
    for line, row in rows:
        try:
            inputs = coerce_inputs(definition, row.inputs)
        except InputError as e:
            problems += [RowProblem(line, name, message) for name, message in e.details.items()]
            continue
        unstorable = [
            RowProblem(line, column, f"The value {message}.")
            for column, value in [*inputs.items(), (EXPECTED_COLUMN, row.expected)]
            if (message := unstorable_value(value))
        ]
        if unstorable:
            problems += unstorable
            continue
        kept.append(NewRow(inputs, row.expected, row.source_run_id))
    if problems:
        raise DatasetInvalid(_refused(problems), problems)
    _limit_rows(len(kept))
    return kept


@transaction.atomic
def _create(*, workflow: Workflow, name: str, rows: list[NewRow], user: User | None) -> Dataset:
    name = name.strip()[:200]
    if not name:
        raise DatasetInvalid("A dataset needs a name.")
    if name_direction_problem(name):
        raise DatasetInvalid(name_direction_problem(name))
    dataset = Dataset.objects.create(
        workspace_id=workflow.workspace_id, workflow=workflow, name=name, created_by=user
    )
    DatasetRow.objects.bulk_create(
        DatasetRow(
            dataset=dataset,
            position=position,
            inputs=row.inputs,
            expected=row.expected,
            source_run_id=row.source_run_id,
        )
        for position, row in enumerate(rows, start=1)
    )
    return dataset


def dataset_create(
    *, workflow: Workflow, name: str, rows: Sequence[NewRow], user: User | None
) -> Dataset:
    """A dataset of `rows` (checked against the draft's inputs: all stored or none)."""
    _limit_rows(len(rows))
    checked = _checked(workflow, ((n, row) for n, row in enumerate(rows, start=1)))
    return _create(workflow=workflow, name=name, rows=checked, user=user)


def dataset_create_from_runs(
    *, workflow: Workflow, name: str, runs: Sequence[Run], user: User | None, keep_outputs: bool
) -> Dataset:
    """A dataset of the runs' inputs, oldest first; with `keep_outputs`, each succeeded run's
    output is the row's expected output (a baseline to compare a change with)."""
    if any(run.workflow_id != workflow.id for run in runs):
        raise DatasetInvalid("Every run must be a run of this workflow.")
    if any(run.deleted_at is not None for run in runs):
        raise DatasetInvalid("Deleted runs keep no inputs: leave them out.")
    _limit_rows(len(runs))
    ordered = sorted(runs, key=lambda run: run.id)
    rows = [
        NewRow(
            dict(run.inputs),
            run.output if keep_outputs and run.status == Run.Status.SUCCEEDED else None,
            run.id,
        )
        for run in ordered
    ]
    return _create(workflow=workflow, name=name, rows=rows, user=user)


def _read_upload(data: bytes) -> str:
    if len(data) > settings.DATASET_MAX_UPLOAD_BYTES:
        raise DatasetInvalid(
            f"The file is {len(data)} bytes; at most {settings.DATASET_MAX_UPLOAD_BYTES} are read."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetInvalid(f"The file is not UTF-8 text (byte {e.start}).") from None


def expected_cell(text: str) -> object:
    """An expected cell: JSON when it reads as an object or a list, else the text."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            return text
    return text if text != "" else None


def parse_csv(data: bytes) -> list[tuple[int, NewRow]]:
    """Rows of a CSV file with a header: a column per input, and optionally `expected`."""
    text = _read_upload(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetInvalid("The file is empty.") from None
    except csv.Error as e:
        raise DatasetInvalid(f"line 1: {e}") from None
    header = [name.strip() for name in header]
    rows: list[tuple[int, NewRow]] = []
    problems: list[RowProblem] = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                problems.append(
                    RowProblem(line, "", f"{len(cells)} cells, the header has {len(header)}")
                )
                continue
            values = dict(zip(header, cells, strict=True))
            expected = expected_cell(values.pop(EXPECTED_COLUMN, ""))
            rows.append((line, NewRow(dict(values), expected)))
            if len(rows) > settings.DATASET_MAX_ROWS:
                break
    except csv.Error as e:
        problems.append(RowProblem(reader.line_num, "", str(e)))
    if problems:
        raise DatasetInvalid(_refused(problems), problems)
    return rows


def parse_jsonl(data: bytes) -> list[tuple[int, NewRow]]:
    """Rows of a JSON Lines file: `{"inputs": {...}, "expected": ...}` per line."""
    text = _read_upload(data)
    rows: list[tuple[int, NewRow]] = []
    problems: list[RowProblem] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item: Any = json.loads(raw)
        except json.JSONDecodeError as e:
            problems.append(RowProblem(line, str(e.colno), f"not JSON: {e.msg}"))
            continue
        except RecursionError:
            problems.append(RowProblem(line, "1", "not JSON we read: it is nested too deeply"))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("inputs"), dict):
            problems.append(RowProblem(line, "inputs", 'each line must be {"inputs": {...}}'))
            continue
        rows.append((line, NewRow(item["inputs"], item.get("expected"))))
        if len(rows) > settings.DATASET_MAX_ROWS:
            break
    if problems:
        raise DatasetInvalid(_refused(problems), problems)
    return rows


def dataset_import(
    *, workflow: Workflow, name: str, filename: str, data: bytes, user: User | None
) -> Dataset:
    """A dataset from an uploaded file (.jsonl, else read as CSV): all rows or none."""
    jsonl = filename.lower().endswith((".jsonl", ".ndjson"))
    rows = parse_jsonl(data) if jsonl else parse_csv(data)
    _limit_rows(len(rows))
    try:
        checked = _checked(workflow, rows)
    except DatasetInvalid as e:
        if jsonl or not e.problems:
            raise
        # A misspelt header ("Topic") fails every row as missing: say which columns are not inputs.
        names = [i["name"] for i in workflow.definition.get("inputs", []) if isinstance(i, dict)]
        unknown = [
            RowProblem(1, column, f"not an input of the draft (its inputs: {', '.join(names)})")
            for column in rows[0][1].inputs
            if column not in names
        ]
        if not unknown:
            raise
        problems = [*unknown, *e.problems]
        raise DatasetInvalid(_refused(problems), problems) from None
    return _create(workflow=workflow, name=name, rows=checked, user=user)


@transaction.atomic
def dataset_rows_save(*, dataset: Dataset, rows: Sequence[NewRow]) -> None:
    """Replace the dataset's rows with `rows` (the table editor), checked as an import is."""
    _limit_rows(len(rows))
    checked = _checked(dataset.workflow, ((n, row) for n, row in enumerate(rows, start=1)))
    dataset.rows.all().delete()
    DatasetRow.objects.bulk_create(
        DatasetRow(
            dataset=dataset,
            position=position,
            inputs=row.inputs,
            expected=row.expected,
            source_run_id=row.source_run_id,
        )
        for position, row in enumerate(checked, start=1)
    )


@transaction.atomic
def dataset_delete(*, dataset: Dataset) -> None:
    dataset.delete()
