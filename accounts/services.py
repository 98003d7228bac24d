"""Writes for people and workspaces. Views, commands and tests all call these."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils.crypto import get_random_string
from django.utils.text import slugify

from accounts.models import Membership, Role, User, Workspace


def _free_slug(name: str) -> str:
    base = slugify(name)[:48] or "workspace"
    slug = base
    while Workspace.objects.filter(slug=slug).exists():
        slug = f"{base}-{get_random_string(5, 'abcdefghijkmnpqrstuvwxyz23456789')}"
    return slug


@transaction.atomic
def workspace_create(*, name: str, owner: User) -> Workspace:
    """A new workspace with `owner` as its first owner."""
    for _ in range(5):
        try:
            with transaction.atomic():
                workspace = Workspace.objects.create(name=name, slug=_free_slug(name))
            break
        except IntegrityError:  # another request took the slug between check and insert
            continue
    else:
        raise RuntimeError("Could not find a free workspace slug.")
    Membership.objects.create(user=owner, workspace=workspace, role=Role.OWNER)
    return workspace


@transaction.atomic
def user_signup(*, email: str, password: str, name: str = "") -> tuple[User, Workspace]:
    """A new user and their personal workspace, which they own."""
    user = User.objects.create_user(email=email, password=password, name=name)
    label = name or email.split("@")[0]
    workspace = workspace_create(name=f"{label}'s workspace", owner=user)
    return user, workspace
