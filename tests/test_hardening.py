"""Fixes from a security review, each pinned by a test: secrets in encoded
spellings, an eval's diff on long outputs, CSV header cells, deeply nested
JSONL, the publish rule without checks, a decision across workspaces."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote, quote_plus

import pytest

from accounts.models import Membership
from tests.conftest import Personas
from tests.factories import published_workflow, run_row
from workflows import services
from workflows.evals.datasets import DatasetInvalid, parse_jsonl
from workflows.evals.results import word_diff
from workflows.models import Run
from workflows.pages.eval_views import csv_safe
from workflows.steps.http.secrets import REDACTED, scrub

SECRET = 'ab+cd/ef=gh&ij"k'


def test_a_secret_is_scrubbed_in_the_spellings_an_answer_may_echo() -> None:
    echoed = [
        SECRET,
        quote(SECRET, safe=""),
        quote_plus(SECRET, safe=""),
        json.dumps(SECRET)[1:-1],
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
    ]
    for spelling in echoed:
        cleaned = scrub({"text": f"got {spelling} back"}, [SECRET])
        assert spelling.rstrip("=") not in json.dumps(cleaned), spelling
        assert REDACTED in json.dumps(cleaned, ensure_ascii=False)


def test_the_eval_diff_of_long_outputs_is_not_drawn() -> None:
    long_a = " ".join(f"w{i}" for i in range(20_000))
    long_b = " ".join(f"v{i}" for i in range(20_000))
    started = time.perf_counter()
    assert word_diff(long_a, long_b) == [("added", long_b)]
    assert time.perf_counter() - started < 1
    assert word_diff("a b c", "a x c") == [
        ("same", "a"),
        ("removed", "b"),
        ("added", "x"),
        ("same", "c"),
    ]


def test_csv_cells_that_a_spreadsheet_would_run_are_defused() -> None:
    for cell in ('=HYPERLINK("http://x/?"&A2,"ok")', "+1", "-1", "@SUM(A1)"):
        assert csv_safe(cell)[0] not in "=+-@"


def test_a_jsonl_line_nested_too_deeply_is_a_row_problem() -> None:
    deep = '{"inputs": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    with pytest.raises(DatasetInvalid) as refused:
        parse_jsonl(f'{{"inputs": {{}}}}\n{deep}\n'.encode())
    (problem,) = refused.value.problems
    assert problem.line == 2 and "nested too deeply" in problem.message


def test_a_decision_on_another_workspaces_run_is_refused_by_the_service(
    personas: Personas,
) -> None:
    workflow = published_workflow(personas.other_workspace)
    run = run_row(workflow, status=Run.Status.WAITING, waiting_for=Run.WaitingFor.DECISION)
    mine = Membership.objects.get(user=personas.alice, workspace=personas.workspace)
    with pytest.raises(services.NotAllowedToDecide, match="not in your workspace"):
        services.run_decide(run=run, membership=mine, approve=True, comment="")
