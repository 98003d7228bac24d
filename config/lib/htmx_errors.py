"""A failed htmx request says why in an error toast, set by the server.

base.html's htmx config swaps no 4xx/5xx answer except 409 (a conflict) and
422 (a form with errors), which carry their own markup. Every other failed
answer to an htmx request gets an `HX-Trigger` "toast" event (unless its view
already chose a toast), so static/js/app.js only shows what the header says.
Outermost in MIDDLEWARE, so it also sees what other middleware refuses (a
CSRF failure, a lockout) and the 500 page of an unhandled error.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

SWAPPED = {409, 422}
MESSAGES = {
    403: "You don't have permission to do that.",
    404: "That no longer exists. Reload the page.",
    429: "Too many requests. Wait a moment and try again.",
}


def error_message(status: int) -> str:
    if status >= 500:
        return f"Something went wrong on the server ({status}). Try again."
    return MESSAGES.get(status, f"The request failed ({status}).")


class HtmxErrorToastMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        status = response.status_code
        if request.headers.get("HX-Request") != "true" or status < 400 or status in SWAPPED:
            return response
        events = _events(response.headers.get("HX-Trigger", ""))
        if "toast" not in events:
            events["toast"] = {"level": "error", "message": error_message(status)}
            response.headers["HX-Trigger"] = json.dumps(events)
        return response


def _events(header: str) -> dict[str, object]:
    """The events an HX-Trigger header fires, by name: htmx takes a JSON object
    of events with their details, or a comma-separated list of event names."""
    try:
        events = json.loads(header or "{}")
    except ValueError:
        events = None
    if isinstance(events, dict):
        return events
    return {name.strip(): {} for name in header.split(",") if name.strip()}
