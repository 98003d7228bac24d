from typing import cast

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import BudgetMonth, Invitation, Membership, User, Workspace


def _staff(request: HttpRequest) -> User:
    """The person using the admin: the admin site lets in only signed-in staff."""
    return cast(User, request.user)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "date_joined"]
    search_fields = ["email", "name"]
    fieldsets = [
        (None, {"fields": ["email", "password", "name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]

    # Through the service, so the account's API tokens and invitations are revoked and audit-logged.
    def delete_model(self, request: HttpRequest, obj: User) -> None:
        services.user_delete(user=obj, actor=_staff(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            services.user_delete(user=user, actor=_staff(request))


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    inlines = [MembershipInline]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = [
        "email",
        "workspace",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]
    list_filter = ["role"]
    search_fields = ["email", "workspace__name"]
    # The hash is useless to a person and the token itself is never stored.
    exclude = ["token_hash"]
    readonly_fields = ["accepted_at", "accepted_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invitations are sent from the workspace settings, which email the link


@admin.register(BudgetMonth)
class BudgetMonthAdmin(admin.ModelAdmin):
    """The budget ledger, for operators: `reserved` is what calls in flight hold."""

    list_display = ["workspace", "month", "spent_nanousd", "reserved_nanousd"]
    search_fields = ["workspace__name", "workspace__slug"]
    readonly_fields = ["workspace", "month", "spent_nanousd", "reserved_nanousd"]
