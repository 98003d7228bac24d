"""Writes for people and workspaces. Views, commands and tests all call these."""

from __future__ import annotations

import hashlib
import logging
import secrets

from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify

from accounts.audit import audit_record
from accounts.models import (
    INVITATION_LIFETIME,
    MAX_RUN_RETENTION_DAYS,
    SECRET_MAX_CHARS,
    SECRET_NAME_RE,
    SECRET_PURPOSE,
    Invitation,
    Membership,
    Role,
    User,
    Workspace,
    WorkspaceSecret,
)
from config.lib import outbound, secret_hosts
from config.lib.sealing import reseal, seal
from config.lib.site import site_url
from workflows.llm.pricing import to_usd
from workflows.models import ApiToken

log = logging.getLogger(__name__)


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
    audit_record(
        workspace=workspace,
        actor=owner,
        action="workspace.create",
        target=workspace,
        after={"name": workspace.name, "slug": workspace.slug},
    )
    return workspace


@transaction.atomic
def user_signup(*, email: str, password: str, name: str = "") -> tuple[User, Workspace]:
    """A new user, address not yet confirmed, and their personal workspace, which they own.

    They cannot log in until they confirm their address (accounts/verification.py,
    which also keeps sign-up from telling which addresses have accounts).
    """
    user = User.objects.create_user(
        email=email, password=password, name=name, email_verified_at=None
    )
    label = name or email.split("@")[0]
    workspace = workspace_create(name=f"{label}'s workspace", owner=user)
    return user, workspace


# --- Team: invitations, members, the workspace itself, the budget ---------------------------------


class MembershipRefused(Exception):
    """A member change the rules forbid; the message says why, for people."""


class InvitationUnusable(Exception):
    """An invitation link that cannot be used: `reason` is
    unknown, expired, revoked, used or wrong_account."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_by_token(token: str) -> Invitation | None:
    """The invitation a link's token belongs to, whatever its state."""
    return (
        Invitation.objects.select_related("workspace", "invited_by")
        .filter(token_hash=token_hash(token))
        .first()
    )


def invitation_link(token: str, request: HttpRequest | None = None) -> str:
    """The link to accept an invitation; on a page (`request`), as config.lib.site.site_url says."""
    return f"{site_url(request)}{reverse('invitation_accept', args=[token])}"


def _send_invitation_email(invitation: Invitation, token: str) -> None:
    inviter = invitation.invited_by.display_name if invitation.invited_by else "Someone"
    context = {
        "inviter": inviter,
        "workspace": invitation.workspace.name,
        "role": invitation.get_role_display(),
        "link": invitation_link(token),
        "expires_at": invitation.expires_at,
    }
    try:
        send_mail(
            f"{inviter} invited you to {invitation.workspace.name} on Stepwise",
            render_to_string("emails/invitation.txt", context),
            None,
            [invitation.email],
        )
    except Exception as e:  # SMTP has many ways to fail; none should lose the invitation
        log.warning("Invitation %s: the email could not be sent", invitation.id, exc_info=True)
        invitation.email_error = str(e) or e.__class__.__name__
    else:
        invitation.email_error = ""


def _grantable(actor: Membership, role: Role) -> None:
    if role == Role.OWNER and actor.role_enum != Role.OWNER:
        raise MembershipRefused("Only an owner can make someone an owner.")
    if not actor.allows(Role.ADMIN):
        raise MembershipRefused("Only admins and owners manage members.")


@transaction.atomic
def invitation_create(
    *, workspace: Workspace, email: str, role: Role, actor: Membership
) -> tuple[Invitation, str]:
    """Invite `email` as `role`; returns the invitation and its token (the link's only copy).

    The email goes out once committed. An open invitation to the same address
    is replaced (its link stops working), so "invite again" also resends.
    `invitation.email_error` says whether sending failed (the link still works).
    """
    _grantable(actor, role)
    email = email.strip().lower()
    if workspace.memberships.filter(user__email__iexact=email).exists():
        raise MembershipRefused(f"{email} is already a member of {workspace.name}.")
    now = timezone.now()
    replaced = list(
        Invitation.objects.select_for_update()
        .filter(workspace=workspace, email=email, accepted_at__isnull=True, revoked_at__isnull=True)
        .values_list("id", flat=True)
    )
    Invitation.objects.filter(id__in=replaced).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        workspace=workspace,
        email=email,
        role=role,
        token_hash=token_hash(token),
        invited_by=actor.user,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )
    invitation.email_error = ""
    audit_record(
        workspace=workspace,
        actor=actor.user,
        action="invitation.create",
        target=invitation,
        label=email,
        after={"email": email, "role": str(role), "replaced": len(replaced)},
    )
    transaction.on_commit(lambda: _send_invitation_email(invitation, token))
    return invitation, token


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Membership) -> None:
    """Withdraw a pending invitation: its link stops working."""
    if not actor.allows(Role.ADMIN):
        raise MembershipRefused("Only admins and owners manage invitations.")
    if (
        Invitation.objects.filter(
            id=invitation.id, accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        != 1
    ):
        raise MembershipRefused("This invitation was already accepted or withdrawn.")
    audit_record(
        workspace=invitation.workspace_id,
        actor=actor.user,
        action="invitation.revoke",
        target=invitation,
        label=invitation.email,
        before={"email": invitation.email, "role": invitation.role},
    )


def invitation_check(invitation: Invitation | None, user: User | None = None) -> Invitation:
    """The invitation if it can still be accepted (by
    `user`, when given), else InvitationUnusable."""
    if invitation is None:
        raise InvitationUnusable(
            "unknown", "This invitation link is not valid. Check that it was copied whole."
        )
    inviter = (
        invitation.invited_by.display_name
        if invitation.invited_by
        else "the person who invited you"
    )
    if invitation.accepted_at is not None:
        raise InvitationUnusable("used", "This invitation has already been used.")
    if invitation.revoked_at is not None:
        raise InvitationUnusable(
            "revoked",
            (
                f"This invitation was withdrawn or replaced by a newer one. Ask {inviter} for a "
                "new link."
            ),
        )
    if not inviter_may_still_grant(invitation):
        # Checked again here, not only revoked by the services: a role changed in
        # the admin site or a shell must not leave a departed admin's links working.
        raise InvitationUnusable(
            "revoked",
            f"This invitation was withdrawn: the person who sent it can no longer invite people to "
            f"{invitation.workspace.name}. Ask one of its admins for a new link.",
        )
    if invitation.is_expired:
        raise InvitationUnusable(
            "expired",
            (
                f"This invitation expired on {invitation.expires_at:%b %-d, %Y}. Ask {inviter} "
                "to invite you again."
            ),
        )
    if user is not None and user.email.lower() != invitation.email.lower():
        raise InvitationUnusable(
            "wrong_account",
            f"This invitation is for {invitation.email}, but you are logged in as {user.email}. "
            f"Log out, then open the link again and log in or sign up as {invitation.email}.",
        )
    return invitation


def _may_create(role: Role | None, *, invitation_role: str | None = None) -> bool:
    """Whether a member with `role` (None: not a member) may make a token, or this invitation."""
    if role is None or not role.allows(Role.ADMIN):
        return False
    return invitation_role != Role.OWNER or role == Role.OWNER


def inviter_may_still_grant(invitation: Invitation) -> bool:
    """Whether whoever sent `invitation` could still send
    it now (a member, active, with the role for it)."""
    if invitation.invited_by_id is None:  # their account was deleted
        return False
    membership = (
        Membership.objects.filter(
            user_id=invitation.invited_by_id,
            workspace_id=invitation.workspace_id,
            user__is_active=True,
        )
        .only("role")
        .first()
    )
    return _may_create(
        membership.role_enum if membership else None, invitation_role=invitation.role
    )


def _creator_grants_revoke(
    *, user: User, workspace_id: int, role: Role | None, actor: User | None, reason: str
) -> None:
    """Revoke the API tokens and pending invitations `user` made in the workspace that `role`
    (their new role; None: no longer a member) could not make. Each revocation is audit-logged
    with `reason`.

    Tokens act with an admin's rights, and an invitation grants its role: neither may outlive the
    power of the member who made it (a departing admin could otherwise pre-invite another address).
    """
    now = timezone.now()
    if not _may_create(role):
        tokens = list(
            ApiToken.objects.select_for_update().filter(
                workspace_id=workspace_id, created_by=user, revoked_at__isnull=True
            )
        )
        ApiToken.objects.filter(id__in=[t.id for t in tokens]).update(revoked_at=now)
        for token in tokens:
            audit_record(
                workspace=workspace_id,
                actor=actor,
                action="token.revoke",
                target=token,
                before={"name": token.name, "prefix": token.prefix},
                after={"reason": reason},
            )
    invitations = [
        invitation
        for invitation in Invitation.objects.select_for_update().filter(
            workspace_id=workspace_id,
            invited_by=user,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
        )
        if not _may_create(role, invitation_role=invitation.role)
    ]
    Invitation.objects.filter(id__in=[i.id for i in invitations]).update(revoked_at=now)
    for invitation in invitations:
        audit_record(
            workspace=workspace_id,
            actor=actor,
            action="invitation.revoke",
            target=invitation,
            label=invitation.email,
            before={"email": invitation.email, "role": invitation.role},
            after={"reason": reason},
        )


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Join the workspace with the invited role. The
    link works once, for the invited address only."""
    locked = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("workspace", "invited_by")
        .get(id=invitation.id)
    )
    invitation_check(locked, user)
    membership, created = Membership.objects.get_or_create(
        user=user, workspace=locked.workspace, defaults={"role": locked.role}
    )
    locked.accepted_at = timezone.now()
    locked.accepted_by = user
    locked.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        workspace=locked.workspace,
        actor=user,
        action="invitation.accept",
        target=locked,
        label=locked.email,
        after={"email": locked.email, "role": membership.role, "joined": created},
    )
    return membership


@transaction.atomic
def invitation_signup(
    *, invitation: Invitation, password: str, name: str = ""
) -> tuple[User, Membership]:
    """A new account for the invited address, joining
    the workspace at once (no personal workspace)."""
    invitation_check(invitation)
    # The link came by mail to this address: that confirms it.
    user = User.objects.create_user(
        email=invitation.email, password=password, name=name, email_verified_at=timezone.now()
    )
    return user, invitation_accept(invitation=invitation, user=user)


def _lock_owners(workspace_id: int) -> int:
    """How many owners the workspace has, with their rows locked until commit."""
    return len(
        Membership.objects.select_for_update()
        .filter(workspace_id=workspace_id, role=Role.OWNER)
        .values_list("id", flat=True)
    )


def _keeps_an_owner(membership: Membership, doing: str) -> None:
    if membership.role == Role.OWNER and _lock_owners(membership.workspace_id) <= 1:
        raise MembershipRefused(
            f"{membership.user.email} is the last owner of {membership.workspace.name} and "
            f"cannot {doing}. "
            "Make another member an owner first."
        )


def membership_manageable(*, actor: Membership, member: Membership) -> bool:
    """Whether `actor` may change `member`'s role or remove them (see `_may_manage`); the last
    owner is kept apart (`_keeps_an_owner`)."""
    return actor.allows(Role.ADMIN) and (member.role != Role.OWNER or actor.role_enum == Role.OWNER)


def _may_manage(actor: Membership, member: Membership) -> None:
    if membership_manageable(actor=actor, member=member):
        return
    if not actor.allows(Role.ADMIN):
        raise MembershipRefused("Only admins and owners manage members.")
    raise MembershipRefused("Only an owner can change or remove an owner.")


@transaction.atomic
def membership_change_role(*, membership: Membership, role: Role, actor: Membership) -> Membership:
    """Give a member another role. The last owner keeps theirs."""
    _may_manage(actor, membership)
    _grantable(actor, role)
    before = membership.role
    if before == role:
        return membership
    if before == Role.OWNER:
        _keeps_an_owner(membership, "be demoted")
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        workspace=membership.workspace_id,
        actor=actor.user,
        action="member.role_change",
        target=membership,
        label=membership.user.email,
        before={"role": before},
        after={"role": str(role)},
    )
    article = "an" if role == Role.ADMIN else "a"
    _creator_grants_revoke(
        user=membership.user,
        workspace_id=membership.workspace_id,
        role=role,
        actor=actor.user,
        reason=f"{membership.user.email} became {article} {role.label.lower()}",
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Membership) -> None:
    """Take a member out of the workspace. Their workflows and runs stay."""
    if membership.id == actor.id:
        workspace_leave(membership=membership)
        return
    _may_manage(actor, membership)
    _keeps_an_owner(membership, "be removed")
    audit_record(
        workspace=membership.workspace_id,
        actor=actor.user,
        action="member.remove",
        target=membership,
        label=membership.user.email,
        before={"role": membership.role},
    )
    _creator_grants_revoke(
        user=membership.user,
        workspace_id=membership.workspace_id,
        role=None,
        actor=actor.user,
        reason=f"{membership.user.email} was removed from the workspace",
    )
    membership.delete()


@transaction.atomic
def workspace_leave(*, membership: Membership) -> None:
    """Leave a workspace. The last owner cannot: someone must be able to manage it."""
    _keeps_an_owner(membership, "leave")
    audit_record(
        workspace=membership.workspace_id,
        actor=membership.user,
        action="member.leave",
        target=membership,
        label=membership.user.email,
        before={"role": membership.role},
    )
    _creator_grants_revoke(
        user=membership.user,
        workspace_id=membership.workspace_id,
        role=None,
        actor=membership.user,
        reason=f"{membership.user.email} left the workspace",
    )
    membership.delete()


@transaction.atomic
def user_delete(*, user: User, actor: User | None) -> None:
    """Delete an account. Its tokens and pending invitations are revoked first, in every workspace,
    each with an audit entry; its workflows and runs stay, and audit entries keep its email."""
    email = user.email
    workspace_ids = set(
        ApiToken.objects.filter(created_by=user, revoked_at__isnull=True).values_list(
            "workspace_id", flat=True
        )
    ) | set(
        Invitation.objects.filter(
            invited_by=user, accepted_at__isnull=True, revoked_at__isnull=True
        ).values_list("workspace_id", flat=True)
    )
    for workspace_id in sorted(workspace_ids):
        _creator_grants_revoke(
            user=user,
            workspace_id=workspace_id,
            role=None,
            actor=actor,
            reason=f"The account of {email} was deleted",
        )
    log.warning(
        "Account %s (%s) deleted by %s", user.id, email, actor.email if actor else "the system"
    )
    user.delete()


@transaction.atomic
def workspace_rename(*, workspace: Workspace, name: str, actor: Membership) -> Workspace:
    """A new name; the slug (in addresses, webhooks and the API) stays, so nothing breaks."""
    if actor.role_enum != Role.OWNER:
        raise MembershipRefused("Only an owner can rename the workspace.")
    name = name.strip()
    before = workspace.name
    if name == before:
        return workspace
    workspace.name = name
    workspace.save(update_fields=["name"])
    audit_record(
        workspace=workspace,
        actor=actor.user,
        action="workspace.rename",
        target=workspace,
        before={"name": before},
        after={"name": name},
    )
    return workspace


@transaction.atomic
def workspace_delete(*, workspace: Workspace, confirm_name: str, actor: Membership) -> None:
    """Delete the workspace with everything in it (workflows, runs, members, its audit log)."""
    if actor.role_enum != Role.OWNER:
        raise MembershipRefused("Only an owner can delete the workspace.")
    if confirm_name.strip() != workspace.name:
        raise MembershipRefused(f"Type the workspace's name, {workspace.name}, exactly to confirm.")
    # The workspace's own log goes with it: leave a trace in the server log instead.
    log.warning("Workspace %s (%s) deleted by %s", workspace.id, workspace.slug, actor.user.email)
    workspace.delete()


def _budget_text(nanousd: int | None) -> str:
    return "no limit" if nanousd is None else f"${to_usd(nanousd):,.2f}"


@transaction.atomic
def budget_set(*, workspace: Workspace, budget_nanousd: int | None, actor: Membership) -> Workspace:
    """Set the monthly LLM budget (None: no limit). It applies to the next call at once."""
    if actor.role_enum != Role.OWNER:
        raise MembershipRefused("Only an owner can set the budget.")
    if budget_nanousd is not None and budget_nanousd < 0:
        raise MembershipRefused("The budget cannot be negative.")
    before = workspace.budget_nanousd
    if before == budget_nanousd:
        return workspace
    workspace.budget_nanousd = budget_nanousd
    workspace.save(update_fields=["budget_nanousd"])
    audit_record(
        workspace=workspace,
        actor=actor.user,
        action="budget.change",
        target=workspace,
        before={"monthly_budget": _budget_text(before)},
        after={"monthly_budget": _budget_text(budget_nanousd)},
    )
    return workspace


def _days_text(days: int) -> str:
    return f"{days} day{'s' if days != 1 else ''}"


@transaction.atomic
def run_retention_set(*, workspace: Workspace, days: int, actor: Membership) -> Workspace:
    """Set how many days finished runs keep their details (workflows/retention.py); the
    operator's RUN_RETENTION_MAX_DAYS still caps it. The next nightly prune applies it."""
    if actor.role_enum != Role.OWNER:
        raise MembershipRefused("Only an owner can change how long runs are kept.")
    if not 1 <= days <= MAX_RUN_RETENTION_DAYS:
        raise MembershipRefused(f"Keep run details for 1 to {MAX_RUN_RETENTION_DAYS:,} days.")
    before = workspace.run_retention_days
    if before == days:
        return workspace
    workspace.run_retention_days = days
    workspace.save(update_fields=["run_retention_days"])
    audit_record(
        workspace=workspace,
        actor=actor.user,
        action="retention.change",
        target=workspace,
        before={"run_details_kept": _days_text(before)},
        after={"run_details_kept": _days_text(days)},
    )
    return workspace


def publish_eval_rule_set(*, workspace: Workspace, percent: int | None, actor: Membership) -> None:
    """Require the draft's latest eval to pass at least `percent` % of its rows before
    publishing (None: not required); enforced by workflows.services.workflow_publish."""
    if actor.role_enum != Role.OWNER:
        raise MembershipRefused("Only an owner can change the publishing rule.")
    if percent is not None and not 0 <= percent <= 100:
        raise MembershipRefused("The pass rate is a percentage, from 0 to 100.")
    before = workspace.publish_eval_min_percent
    if before == percent:
        return
    workspace.publish_eval_min_percent = percent
    workspace.save(update_fields=["publish_eval_min_percent"])
    audit_record(
        workspace=workspace,
        actor=actor.user,
        action="workspace.publish_rule",
        target=workspace,
        before={"eval_min_percent": before},
        after={"eval_min_percent": percent},
    )


# --- Secrets -------------------------------------------------------------------------


class SecretRefused(Exception):
    """The secret cannot be saved as asked (a taken or malformed name, a bad value, the role)."""


def _secret_checks(actor: Membership, value: str) -> None:
    if not actor.allows(Role.ADMIN):
        raise SecretRefused("Only an admin or an owner can manage secrets.")
    if not value:
        raise SecretRefused("A secret needs a value.")
    if len(value) > SECRET_MAX_CHARS:
        raise SecretRefused(f"A secret holds at most {SECRET_MAX_CHARS:,} characters.")


def _secret_hosts(allowed_hosts: str | list[str]) -> list[str]:
    try:
        hosts = secret_hosts.parse_hosts(allowed_hosts)
    except ValueError as error:
        raise SecretRefused(str(error)) from None
    if not hosts:
        raise SecretRefused("Name at least one host this secret may be sent to.")
    return hosts


def _hosts_text(secret: WorkspaceSecret) -> str:
    """A secret's hosts as the audit log shows them."""
    return "any host (legacy)" if secret.any_host else ", ".join(secret.allowed_hosts)


@transaction.atomic
def secret_create(
    *,
    workspace: Workspace,
    name: str,
    value: str,
    allowed_hosts: str | list[str],
    actor: Membership,
) -> WorkspaceSecret:
    """A new secret, sent only to `allowed_hosts` (at least one; config/lib/secret_hosts.py).
    Its value is stored encrypted and never shown again; the audit log records its name
    and hosts only."""
    _secret_checks(actor, value)
    name = name.strip()
    if not SECRET_NAME_RE.fullmatch(name):
        raise SecretRefused(
            "Use letters, digits and underscores, starting with a letter or underscore, "
            "at most 64 characters."
        )
    hosts = _secret_hosts(allowed_hosts)
    if workspace.secrets.filter(name=name).exists():
        raise SecretRefused(f"There is already a secret named {name}; rotate it instead.")
    secret = WorkspaceSecret.objects.create(
        workspace=workspace,
        name=name,
        value_encrypted=seal(SECRET_PURPOSE, value),
        created_by=actor.user,
        allowed_hosts=hosts,
        any_host=False,
    )
    audit_record(
        workspace=workspace,
        actor=actor.user,
        action="secret.create",
        target=secret,
        after={"name": name, "hosts": _hosts_text(secret)},
    )
    return secret


@transaction.atomic
def secret_rotate(
    *,
    secret: WorkspaceSecret,
    value: str,
    allowed_hosts: str | list[str],
    actor: Membership,
) -> WorkspaceSecret:
    """Replace the value (an empty `value` keeps it) and the hosts it may be sent to: runs
    that start from now on send the new value, and only to those hosts. Naming hosts ends
    a legacy secret's "any host"."""
    if not actor.allows(Role.ADMIN):
        raise SecretRefused("Only an admin or an owner can manage secrets.")
    if value:
        _secret_checks(actor, value)
    hosts = _secret_hosts(allowed_hosts)
    before = _hosts_text(secret)
    fields: list[str] = []
    if value:
        secret.value_encrypted = seal(SECRET_PURPOSE, value)
        secret.rotated_at = timezone.now()
        fields += ["value_encrypted", "rotated_at"]
    if secret.any_host or hosts != secret.allowed_hosts:
        secret.allowed_hosts, secret.any_host = hosts, False
        fields += ["allowed_hosts", "any_host"]
    if not fields:
        return secret
    secret.save(update_fields=fields)
    if value:
        audit_record(
            workspace=secret.workspace_id,
            actor=actor.user,
            action="secret.rotate",
            target=secret,
            after={"name": secret.name},
        )
    if "allowed_hosts" in fields:
        audit_record(
            workspace=secret.workspace_id,
            actor=actor.user,
            action="secret.hosts",
            target=secret,
            before={"name": secret.name, "hosts": before},
            after={"name": secret.name, "hosts": _hosts_text(secret)},
        )
    return secret


@transaction.atomic
def secret_delete(*, secret: WorkspaceSecret, actor: Membership) -> None:
    """Delete it: http steps that use it fail until a secret of that name exists again."""
    if not actor.allows(Role.ADMIN):
        raise SecretRefused("Only an admin or an owner can manage secrets.")
    audit_record(
        workspace=secret.workspace_id,
        actor=actor.user,
        action="secret.delete",
        target=secret,
        before={"name": secret.name},
    )
    secret.delete()


def secrets_reencrypt() -> tuple[int, int]:
    """Re-encrypt every workspace secret under the current SECRET_KEY (after a rotation);
    returns (re-encrypted, readable under none of the keys: left as they are)."""
    done = unreadable = 0
    for secret in WorkspaceSecret.objects.only("id", "value_encrypted").iterator():
        token = reseal(SECRET_PURPOSE, secret.value_encrypted)
        if token is None:
            unreadable += 1
            continue
        # Conditional on the old value: a rotation meanwhile is not overwritten.
        done += WorkspaceSecret.objects.filter(
            id=secret.id, value_encrypted=secret.value_encrypted
        ).update(value_encrypted=token)
    return done, unreadable


@transaction.atomic
def outbound_narrow(
    *, workspace: Workspace, narrowed: bool, allowed_hosts: str, actor: Membership
) -> Workspace:
    """Which of the operator's internal hosts (OUTBOUND_ALLOWED_HOSTS) its http steps may
    reach: all of them (`narrowed` False), or only those listed here (none if empty)."""
    if actor.role_enum != Role.OWNER:
        raise MembershipRefused("Only an owner can change which internal hosts are reachable.")
    entries = outbound.parse_allowed_hosts(allowed_hosts)  # raises ValueError on a bad entry
    text = "\n".join(entry.text for entry in entries)
    before = {"narrowed": workspace.outbound_narrowed, "hosts": workspace.outbound_allowed_hosts}
    after = {"narrowed": narrowed, "hosts": text}
    if before == after:
        return workspace
    workspace.outbound_narrowed = narrowed
    workspace.outbound_allowed_hosts = text
    workspace.save(update_fields=["outbound_narrowed", "outbound_allowed_hosts"])
    audit_record(
        workspace=workspace,
        actor=actor.user,
        action="workspace.outbound",
        target=workspace,
        before=before,
        after=after,
    )
    return workspace
