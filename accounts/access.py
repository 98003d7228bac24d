"""The one door into a workspace.

Every workspace view, API endpoint and fragment reaches its objects through
`workspace_for`: a non-member gets 404 (the workspace's existence is not
revealed), a member whose role is too low gets 403. The objects inside a
workspace are reached through it too (`workflow_for`, `run_for`): another
workspace's id is a 404, as if it did not exist. What hangs below them (a
workflow's triggers, schedules and versions, the workspace's API tokens) is
read by selectors scoped by the object handed out here, never by a bare id.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import Invitation, Membership, Role, User
from workflows.models import Dataset, Eval, Run, Workflow


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


def workflow_for(
    request: HttpRequest, slug: str, workflow_id: int, *, role: Role, archived: bool = True
) -> tuple[Membership, Workflow]:
    """The membership and workflow `workflow_id` of workspace `slug` (else 404).

    `archived=False` refuses an archived workflow as well (404): its triggers
    are not managed until it is back in the list, while the editor, its
    versions and test runs still open for it.
    """
    membership = workspace_for(request, slug, role=role)
    workflow = workflow_in(membership.workspace.id, workflow_id, archived=archived)
    workflow.workspace = membership.workspace  # already loaded: no second query
    return membership, workflow


def run_for(membership: Membership, run_id: int) -> Run:
    """Run `run_id` of the membership's workspace (else 404), with its workflow, version and
    starter."""
    return run_in(membership.workspace.id, run_id)


def member_for(actor: Membership, member_id: int) -> Membership:
    """Membership `member_id` of the actor's workspace (else 404), with its user."""
    member = (
        Membership.objects.select_related("user", "workspace")
        .filter(id=member_id, workspace=actor.workspace)
        .first()
    )
    if member is None:
        raise Http404("No such member.")
    return member


def invitation_for(actor: Membership, invitation_id: int) -> Invitation:
    """Invitation `invitation_id` of the actor's workspace (else 404)."""
    invitation = actor.workspace.invitations.filter(id=invitation_id).first()
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


# The API reaches the same objects from its token's workspace (workflows.integrations.api_auth)
# through these.


def workflow_in(workspace_id: int, workflow_id: int, *, archived: bool = True) -> Workflow:
    """Workflow `workflow_id` if it is the workspace's (and active, with `archived=False`),
    else 404."""
    workflows = Workflow.objects.filter(workspace_id=workspace_id, id=workflow_id)
    if not archived:
        workflows = workflows.filter(archived_at__isnull=True)
    workflow = workflows.first()
    if workflow is None:
        raise Http404("No such workflow.")
    return workflow


def run_in(workspace_id: int, run_id: int) -> Run:
    """Run `run_id` if it is the workspace's and not deleted (else 404), with its workflow,
    version and starter."""
    run = (
        Run.objects.select_related("workflow", "version", "created_by")
        .filter(workspace_id=workspace_id, id=run_id, deleted_at__isnull=True)
        .first()
    )
    if run is None:
        raise Http404("No such run.")
    return run


def dataset_in(workspace_id: int, dataset_id: int) -> Dataset:
    """Dataset `dataset_id` if it is the workspace's (else 404), with its workflow."""
    dataset = (
        Dataset.objects.select_related("workflow", "workflow__workspace")
        .filter(workspace_id=workspace_id, id=dataset_id)
        .first()
    )
    if dataset is None:
        raise Http404("No such dataset.")
    return dataset


def eval_in(workspace_id: int, eval_id: int) -> Eval:
    """Eval `eval_id` if it is the workspace's (else 404), with its workflow and dataset."""
    evaluation = (
        Eval.objects.select_related("workflow", "workflow__workspace", "dataset")
        .filter(workspace_id=workspace_id, id=eval_id)
        .first()
    )
    if evaluation is None:
        raise Http404("No such eval.")
    return evaluation


def dataset_for(membership: Membership, dataset_id: int) -> Dataset:
    return dataset_in(membership.workspace.id, dataset_id)


def eval_for(membership: Membership, eval_id: int) -> Eval:
    return eval_in(membership.workspace.id, eval_id)
