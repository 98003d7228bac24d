from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone

from config.lib.names import validate_name_direction


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: object) -> User:
        """A user. Accounts made here (by an operator, a command, a test) count as confirmed unless
        `email_verified_at=None` is passed: only the public sign-up creates unconfirmed ones."""
        if not email:
            raise ValueError("An email address is required.")
        fields.setdefault("email_verified_at", timezone.now())
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: object) -> User:
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. The email address is the login."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True, validators=[validate_name_direction])
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # When the person proved they read mail at `email` (the sign-up link, an
    # invitation link, a password reset). Unconfirmed accounts cannot log in.
    email_verified_at = models.DateTimeField(null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    def __str__(self) -> str:
        return self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def display_name(self) -> str:
        return self.name or self.email.split("@")[0]


class Role(models.TextChoices):
    """Workspace roles, from the most to the least powerful."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        """Whether a member with this role may do what `required` may do."""
        return self.rank >= required.rank


_RANKS = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3, Role.OWNER: 4}


# Run details are kept this long unless the owner says otherwise (or the operator caps it).
DEFAULT_RUN_RETENTION_DAYS = 30
# The longest an owner may ask for (ten years): beyond, no retention is a better word for it.
MAX_RUN_RETENTION_DAYS = 3650


class Workspace(models.Model):
    """A team's shared space: its workflows, runs, members and bill."""

    name = models.CharField(max_length=100, validators=[validate_name_direction])
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The monthly LLM budget in nano-USD; None means no limit (workflows/billing/budget.py).
    budget_nanousd = models.BigIntegerField(null=True, blank=True)
    # Internal hosts its http steps may reach: by default all that the operator
    # allows (OUTBOUND_ALLOWED_HOSTS); when narrowed, only those of
    # `outbound_allowed_hosts` that the operator allows too (none if it is empty).
    outbound_narrowed = models.BooleanField(default=False)
    outbound_allowed_hosts = models.TextField(blank=True)
    # How long finished runs keep their details (inputs, payload, messages, outputs), as the
    # owner set it; `run_retention_days_effective` applies the operator's cap
    # (RUN_RETENTION_MAX_DAYS). workflows/retention.py prunes them nightly.
    run_retention_days = models.PositiveIntegerField(default=DEFAULT_RUN_RETENTION_DAYS)
    # Owner setting: publishing needs the current draft's latest eval to pass at
    # least this percentage of its rows (None: not required). workflows/services.py.
    publish_eval_min_percent = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(budget_nanousd__isnull=True) | Q(budget_nanousd__gte=0),
                name="budget_not_negative",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def run_retention_capped(self) -> bool:
        """Whether the operator's maximum (RUN_RETENTION_MAX_DAYS) shortens the owner's setting."""
        cap = settings.RUN_RETENTION_MAX_DAYS
        return bool(cap) and cap < self.run_retention_days

    @property
    def run_retention_days_effective(self) -> int:
        """How many days finished runs keep their details here: the owner's setting, or the
        operator's maximum if that is shorter."""
        if self.run_retention_capped:
            return int(settings.RUN_RETENTION_MAX_DAYS)
        return self.run_retention_days


class Membership(models.Model):
    user = models.ForeignKey(User, models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} as {self.role}"

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def allows(self, required: Role) -> bool:
        return self.role_enum.allows(required)


class AuditEntry(models.Model):
    """An append-only record of who changed what in a workspace, and when."""

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(User, models.SET_NULL, null=True, blank=True, related_name="+")
    # Kept when the user is deleted, so the log still says who it was.
    actor_email = models.EmailField(blank=True)
    action = models.CharField(max_length=60)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="audit_workspace_recent")]

    def __str__(self) -> str:
        return f"{self.actor_email or 'system'} {self.action} {self.target_label}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit entries are append-only.")


class MailRequest(models.Model):
    """One request that made the server send mail (an invitation, a password reset, a sign-up
    mail, an approval step's email to an approver).

    Counted by the rate limits in accounts/mail.py, per member, per client
    address and per recipient; rows older than a day are pruned as new ones
    come. The recipient is kept only as a hash: sign-up and reset requests
    name addresses that may have no account.
    """

    class Kind(models.TextChoices):
        INVITATION = "invitation", "Invitation"
        PASSWORD_RESET = "password_reset", "Password reset"
        SIGNUP = "signup", "Sign-up"
        APPROVAL = "approval", "Approval request"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    user = models.ForeignKey(User, models.CASCADE, null=True, blank=True, related_name="+")
    ip = models.GenericIPAddressField(null=True, blank=True)
    recipient_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.kind} at {self.created_at:%Y-%m-%d %H:%M}"


INVITATION_LIFETIME = timedelta(days=7)


def invitation_expiry() -> datetime:
    return timezone.now() + INVITATION_LIFETIME


class Invitation(models.Model):
    """An offer to join a workspace, sent by email as a link with a secret token.

    Only the token's SHA-256 is stored: the link in the email is the one copy.
    An invitation is pending until it is accepted, revoked or expires; a new
    invitation to the same address replaces the pending one.
    """

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=invitation_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, models.SET_NULL, null=True, blank=True, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Not stored: set by the services that send the invitation's mail, "" when it went out, else
    # why not (the page says so and offers the link to share by hand).
    email_error: str

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "email"],
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="one_open_invitation_per_email",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.workspace} as {self.role}"

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and not self.is_expired


class BudgetMonth(models.Model):
    """A workspace's LLM spend ledger for one calendar month (UTC).

    `reserved_nanousd` holds the worst case of the calls in flight; a call is
    granted only when spent + reserved + its worst case fits the budget, with
    one conditional UPDATE (workflows/billing/budget.py), so concurrent workers can
    never together spend past it.
    """

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="budget_months")
    month = models.DateField(help_text="The first day of the month.")
    reserved_nanousd = models.BigIntegerField(default=0)
    spent_nanousd = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "month"], name="one_budget_month_per_workspace"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workspace} {self.month:%Y-%m}"


class BudgetReservation(models.Model):
    """The worst case of one LLM call in flight, held in its month's ledger.

    Settling deletes it. A worker killed mid-call leaves it behind; once it is
    older than any call can last, the next call that does not fit releases it.

    An eval's hold (`eval_id` set) is its estimate for the rows it has not
    started yet: it shrinks as they start and goes when the eval ends
    (workflows/evals/execution.py); it is released as stale only once its eval
    is no longer running, however long the eval lasts.
    """

    ledger = models.ForeignKey(BudgetMonth, models.CASCADE, related_name="reservations")
    amount_nanousd = models.BigIntegerField()
    run_id = models.BigIntegerField(null=True, blank=True)
    eval_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        if self.eval_id is not None:
            return f"{self.amount_nanousd} n$ for eval {self.eval_id}"
        return f"{self.amount_nanousd} n$ for run {self.run_id}"


# The Fernet purpose of workspace secrets (config/lib/sealing.py).
SECRET_PURPOSE = "stepwise.workspace-secret"
# A secret's name, as `{{ secrets.NAME }}` references it.
SECRET_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# The longest value a secret holds (a PEM key fits).
SECRET_MAX_CHARS = 10_000


class WorkspaceSecret(models.Model):
    """A named value its http steps use as `{{ secrets.NAME }}`: encrypted at rest
    (config/lib/sealing.py), never shown again once saved."""

    workspace = models.ForeignKey(Workspace, models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=64)
    value_encrypted = models.TextField()
    created_by = models.ForeignKey(User, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)
    # The hosts a request carrying it may go to, at every hop (config/lib/secret_hosts.py:
    # normalised names, `*.example.com`, addresses). Set with the value, by an admin.
    allowed_hosts = models.JSONField(default=list, blank=True)
    # Secrets saved before hosts existed may go anywhere (as they did), until an admin
    # names their hosts; a new one never does.
    any_host = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="one_secret_per_name")
        ]

    def __str__(self) -> str:
        return self.name
