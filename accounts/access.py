"""The one door into a workspace.

Every workspace view, API endpoint and fragment reaches its objects through
`workspace_for`: a non-member gets 404 (the workspace's existence is not
revealed), a member whose role is too low gets 403.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import Membership, Role, User


class HtmxRequest(HttpRequest):
    """Every request here: django-htmx's middleware says in `htmx` whether htmx sent it."""

    htmx: HtmxDetails


class AuthedRequest(HtmxRequest):
    """A request to a @login_required view: its user is signed in."""

    user: User


def membership_for(user: User | AnonymousUser, slug: str, *, role: Role) -> Membership:
    if not user.is_authenticated:
        raise Http404("No such workspace.")
    membership = (
        Membership.objects.select_related("workspace", "user")
        .filter(user=user, workspace__slug=slug)
        .first()
    )
    if membership is None:
        raise Http404("No such workspace.")
    if not membership.allows(role):
        raise PermissionDenied(f"This needs the {role.label.lower()} role or higher.")
    return membership


def workspace_for(request: HttpRequest, slug: str, *, role: Role = Role.VIEWER) -> Membership:
    """The requesting user's membership of workspace `slug`, if it allows `role`."""
    return membership_for(request.user, slug, role=role)
