from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from workflows.llm import client as llm


def llm_status(request: HttpRequest) -> dict[str, bool]:
    """Banners: answers simulated by the fake server, or no key configured."""
    return {
        "simulated_llm": settings.STEPWISE_SIMULATED_LLM,
        "llm_missing_key": not llm.is_configured(),
    }
