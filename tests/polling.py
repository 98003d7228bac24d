"""Waiting for something to happen, by polling it: never a fixed sleep."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

import pytest

from workflows.models import Run


def wait_until(condition: Callable[[], object], timeout: float = 30, message: str = "") -> None:
    """Poll `condition` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message or f"not true within {timeout} s: {condition}")
        time.sleep(0.05)


def wait_for_run(run_id: int, timeout: float = 60) -> Run:
    """The run, once finished (the worker executes it meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        run = Run.objects.get(id=run_id)
        if run.is_finished:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"Run {run_id} did not finish within {timeout} s ({run.status})")
        time.sleep(0.05)


def wait_http(url: str, timeout: float = 30) -> None:
    """Until `url` answers at all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def wait_for_output(
    capfd: pytest.CaptureFixture[str], text: str, count: int = 1, timeout: float = 15
) -> str:
    """What the test's processes printed, once `text` appears `count` times in it
    (a server logs a request after it has answered it)."""
    seen = ""
    deadline = time.monotonic() + timeout
    while True:
        out, err = capfd.readouterr()
        seen += out + err
        if seen.count(text) >= count:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not printed {count} times within {timeout} s:\n{seen}")
        time.sleep(0.05)
