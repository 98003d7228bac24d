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
from django_htmx.http import trigger_client_event

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
        if "toast" in json.loads(response.headers.get("HX-Trigger", "{}")):
            return response
        return trigger_client_event(
            response, "toast", {"level": "error", "message": error_message(status)}
        )
