from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm

from accounts.models import (
    MAX_RUN_RETENTION_DAYS,
    SECRET_MAX_CHARS,
    SECRET_NAME_RE,
    Membership,
    Role,
    User,
    Workspace,
)
from config.lib.allowed_hosts import parse_allowed_hosts
from config.lib.names import validate_name_direction
from config.lib.secret_hosts import parse_hosts as parse_secret_hosts
from workflows.llm.pricing import NANO


class SignupForm(forms.Form):
    name = forms.CharField(
        max_length=150, required=False, label="Your name", validators=[validate_name_direction]
    )
    email = forms.EmailField(label="Email")
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )

    # No check that the address is free: the answer must not tell which addresses have
    # accounts (accounts/verification.py's signup_request mails the owner instead).
    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"]
        return email.strip().lower()

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        password = cleaned.get("password")
        if password:
            candidate = User(email=cleaned.get("email", ""), name=cleaned.get("name", ""))
            try:
                password_validation.validate_password(password, candidate)
            except forms.ValidationError as e:
                self.add_error("password", e)
        return cleaned


class LoginForm(AuthenticationForm):
    """Django's login form, refusing accounts whose address is not confirmed yet."""

    unverified = False

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not user.email_verified:
            # Only said once the password is right, so it reveals nothing to a guesser.
            self.unverified = True
            raise forms.ValidationError(
                "Confirm your email address first: open the link we sent to %(email)s.",
                code="unverified",
                params={"email": user.email},
            )


class WorkspaceForm(forms.Form):
    name = forms.CharField(
        max_length=100, label="Workspace name", validators=[validate_name_direction]
    )


class WorkspaceDeleteForm(forms.Form):
    confirm_name = forms.CharField(
        max_length=100, label="Type the workspace's name to confirm", strip=True
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace

    def clean_confirm_name(self) -> str:
        value: str = self.cleaned_data["confirm_name"]
        if value != self.workspace.name:
            raise forms.ValidationError(
                f"That is not the workspace's name. Type “{self.workspace.name}” exactly."
            )
        return value


def role_choices(actor: Membership) -> list[tuple[str, str]]:
    """The roles `actor` may give: only owners make owners."""
    return [
        (value, label)
        for value, label in Role.choices
        if value != Role.OWNER or actor.role == Role.OWNER
    ]


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(label="Role", initial=Role.EDITOR)

    def __init__(self, *args: Any, actor: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = role_choices(actor)
        self.actor = actor

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"].strip().lower()
        if self.actor.workspace.memberships.filter(user__email__iexact=email).exists():
            raise forms.ValidationError("This person is already a member.")
        return email


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: Any, actor: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = role_choices(actor)


# The smallest budget: a tenth of a cent, still a few small LLM calls. Amounts
# are kept to the nano-dollar, the unit every cost is counted in.
MIN_BUDGET_USD = Decimal("0.0001")


class PublishRuleForm(forms.Form):
    eval_min_percent = forms.IntegerField(
        label="Require a passing eval before publishing (minimum pass rate, %)",
        required=False,
        min_value=0,
        max_value=100,
        help_text=(
            "Publishing is refused until the draft's latest eval passed at least this share of "
            "its rows. Leave empty to publish without an eval."
        ),
    )


class BudgetForm(forms.Form):
    monthly_budget_usd = forms.DecimalField(
        label="Monthly budget (USD)",
        required=False,
        min_value=MIN_BUDGET_USD,
        max_value=Decimal(1_000_000_000),
        max_digits=19,
        decimal_places=9,
        error_messages={
            "min_value": "The smallest budget is $0.0001. Leave the field empty for no limit.",
            "max_decimal_places": (
                "Use at most 9 decimal places: costs are counted to the billionth of a dollar."
            ),
        },
        help_text=(
            "An LLM call is sent only if its worst case fits in what is left; one kept out only "
            "by calls in flight waits for them. Any amount from $0.0001; leave empty for no limit."
        ),
    )

    def budget_nanousd(self) -> int | None:
        value = self.cleaned_data["monthly_budget_usd"]
        return None if value is None else int(value * NANO)

    @staticmethod
    def usd(nanousd: int) -> Decimal:
        """A budget in dollars as the field shows it:
        cents, or every digit it has ($12.50, $0.0001)."""
        exact = Decimal(nanousd) / NANO
        cents = exact.quantize(Decimal("0.01"))
        return cents if cents == exact else exact.normalize()


class RetentionForm(forms.Form):
    run_retention_days = forms.IntegerField(
        label="Keep run details for (days)",
        min_value=1,
        max_value=MAX_RUN_RETENTION_DAYS,
        help_text=(
            "Inputs, payloads, messages and outputs of finished runs older than this are removed "
            "every night; their cost, tokens and timings stay for the usage page and the budget."
        ),
    )


class InvitationSignupForm(forms.Form):
    name = forms.CharField(
        max_length=150, required=False, label="Your name", validators=[validate_name_direction]
    )
    password = forms.CharField(
        label="Choose a password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        password = cleaned.get("password")
        if password:
            try:
                password_validation.validate_password(
                    password, User(email=self.email, name=cleaned.get("name", ""))
                )
            except forms.ValidationError as e:
                self.add_error("password", e)
        return cleaned


class AuditFilterForm(forms.Form):
    """The audit log's filters, from the query string. Every field is optional."""

    action = forms.ChoiceField(required=False, label="Action")
    actor = forms.ChoiceField(required=False, label="Who")
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(
        self, *args: Any, actions: list[tuple[str, str]], actors: list[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["action"]).choices = [("", "All actions"), *actions]
        cast(forms.ChoiceField, self.fields["actor"]).choices = [
            ("", "Everyone"),
            *[(email, email) for email in actors],
        ]

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What uses it: e.g. “CI deploy script”.",
        validators=[validate_name_direction],
    )


class SecretValueForm(forms.Form):
    """Replacing a secret: a new value (empty keeps the current one) and its hosts."""

    # A password field: the browser neither shows it nor sends it back into the page.
    value = forms.CharField(
        required=False,
        strip=False,
        max_length=SECRET_MAX_CHARS,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="Empty keeps the current value. Stored encrypted; nobody can see it again.",
    )
    allowed_hosts = forms.CharField(
        label="Hosts it may be sent to",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text=(
            "One a line, e.g. api.stripe.com; *.example.com for its subdomains. "
            "No scheme, port or path. An http step that would send it anywhere else "
            "(a redirect included) fails before sending."
        ),
    )

    def clean_allowed_hosts(self) -> list[str]:
        try:
            hosts = parse_secret_hosts(self.cleaned_data["allowed_hosts"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        if not hosts:
            raise forms.ValidationError("Name at least one host.")
        return hosts


class SecretForm(SecretValueForm):
    name = forms.CharField(
        max_length=64,
        help_text=(
            "Letters, digits and underscores, e.g. CRM_API_KEY; used as {{ secrets.CRM_API_KEY }}."
        ),
    )
    field_order = ["name", "value", "allowed_hosts"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["value"].required = True
        self.fields[
            "value"
        ].help_text = "Stored encrypted; nobody can see it again, only replace it."

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not SECRET_NAME_RE.fullmatch(name):
            raise forms.ValidationError(
                "Use letters, digits and underscores, starting with a letter or underscore."
            )
        return name


class OutboundHostsForm(forms.Form):
    narrowed = forms.BooleanField(
        required=False, label="Only let this workspace reach the internal hosts listed below"
    )
    allowed_hosts = forms.CharField(
        required=False,
        label="Internal hosts",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="One a line: an address, a range or a host name, with an optional port. "
        "Only those the server's operator allows too are reachable.",
    )

    def clean_allowed_hosts(self) -> str:
        text: str = self.cleaned_data["allowed_hosts"]
        try:
            parse_allowed_hosts(text)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return text
