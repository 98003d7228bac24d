from __future__ import annotations

from django.http import HttpRequest

from accounts.models import Membership


def workspaces(request: HttpRequest) -> dict[str, object]:
    """The user's workspaces for the header's switcher, fetched once, lazily."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def memberships() -> list[Membership]:
        return list(
            Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name")
        )

    return {"my_memberships": memberships}
