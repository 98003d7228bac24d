"""A logging filter that hides webhook trigger ids.

A trigger's id in `/hooks/<id>` is a capability: whoever has it can reach
the workflow (and alone, for an unsigned trigger). Request lines and
Django's 4xx warnings would write it into logs, so the console handler and
uvicorn's access log pass through this filter. No model imports here: it is
loaded while logging is configured, before the apps.
"""

from __future__ import annotations

import logging
import re

_HOOK_PATH = re.compile(r"(/hooks/)[^\s\"'?/]+")


def scrub(text: str) -> str:
    return _HOOK_PATH.sub(r"\1[scrubbed]", text)


class ScrubHookIds(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        if "/hooks/" in message:
            record.msg = scrub(message)
            record.args = None
        return True
