"""The address links should carry."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def site_url(request: HttpRequest | None = None) -> str:
    """SITE_URL when it is set; else, on a page, the address that page was loaded from (validated
    against ALLOWED_HOSTS by Django), so that what people copy works from where they are; else
    SITE_URL's default, this machine at the port the server listens on."""
    if request is not None and not settings.SITE_URL_CONFIGURED:
        return request.build_absolute_uri("/").rstrip("/")
    return settings.SITE_URL
