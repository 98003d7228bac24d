from __future__ import annotations

from django.http import HttpRequest

from accounts.mail import mail_configured
from accounts.models import Membership
from workflows.billing.usage import MonthBudget, month_budget


def workspaces(request: HttpRequest) -> dict[str, object]:
    """The user's workspaces for the header's switcher, fetched once, lazily."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def memberships() -> list[Membership]:
        return list(
            Membership.objects.filter(user=user)
            .select_related("workspace")
            .order_by("workspace__name")
        )

    return {"my_memberships": memberships}


def budget_banner(request: HttpRequest) -> dict[str, object]:
    """This month's budget, for the banner on workspace pages from 80% spent.

    Lazy: a page that never shows a workspace never queries. Members only, so
    an error page reached through another workspace's address reveals nothing.
    """
    user = getattr(request, "user", None)
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("slug") if match is not None else None
    if not slug or user is None or not user.is_authenticated:
        return {}

    def banner() -> MonthBudget | None:
        membership = (
            Membership.objects.filter(user=user, workspace__slug=slug)
            .select_related("workspace")
            .first()
        )
        if membership is None or membership.workspace.budget_nanousd is None:
            return None
        month = month_budget(membership.workspace)
        return month if month.level in ("warning", "exhausted") else None

    return {"budget_banner": banner}


def mail(request: HttpRequest) -> dict[str, object]:
    """Whether mail really leaves the server: pages that send mail say so when it does not."""
    return {"mail_configured": mail_configured()}
