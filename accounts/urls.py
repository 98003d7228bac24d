from django.urls import include, path

from accounts import secret_views, token_views, views

urlpatterns = [
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/signup/sent/", views.signup_sent, name="signup_sent"),
    path("accounts/verify/resend/", views.email_verify_resend, name="email_verify_resend"),
    path("accounts/verify/<str:token>/", views.email_verify, name="email_verify"),
    # Django's own views, with the login refusing unconfirmed addresses and the reset rate-limited.
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/password_reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("workspaces/new/", views.workspace_create, name="workspace_create"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("w/<slug:slug>/settings/", views.workspace_settings, name="workspace_settings"),
    path("w/<slug:slug>/settings/name/", views.workspace_rename, name="workspace_rename"),
    path("w/<slug:slug>/settings/budget/", views.workspace_budget, name="workspace_budget"),
    path(
        "w/<slug:slug>/settings/retention/", views.workspace_retention, name="workspace_retention"
    ),
    path(
        "w/<slug:slug>/settings/publish-rule/",
        views.workspace_publish_rule,
        name="workspace_publish_rule",
    ),
    path("w/<slug:slug>/settings/delete/", views.workspace_delete, name="workspace_delete"),
    path("w/<slug:slug>/invitations/", views.invitation_create, name="invitation_create"),
    path(
        "w/<slug:slug>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("w/<slug:slug>/members/<int:member_id>/role/", views.member_role, name="member_role"),
    path(
        "w/<slug:slug>/members/<int:member_id>/remove/", views.member_remove, name="member_remove"
    ),
    path("w/<slug:slug>/leave/", views.workspace_leave, name="workspace_leave"),
    path("w/<slug:slug>/audit/", views.audit_log, name="audit_log"),
    path("w/<slug:slug>/usage/", views.workspace_usage, name="workspace_usage"),
    # The API tokens of the workspace (accounts/token_views.py).
    path("w/<slug:slug>/settings/api-tokens/", token_views.api_tokens, name="api_tokens"),
    path(
        "w/<slug:slug>/settings/api-tokens/new/",
        token_views.api_token_create,
        name="api_token_create",
    ),
    path(
        "w/<slug:slug>/settings/api-tokens/<int:token_id>/revoke/",
        token_views.api_token_revoke,
        name="api_token_revoke",
    ),
    # The workspace's secrets and internal hosts (accounts/secret_views.py).
    path("w/<slug:slug>/settings/secrets/", secret_views.secrets_page, name="secrets"),
    path("w/<slug:slug>/settings/secrets/new/", secret_views.secret_create, name="secret_create"),
    path(
        "w/<slug:slug>/settings/secrets/<int:secret_id>/rotate/",
        secret_views.secret_rotate,
        name="secret_rotate",
    ),
    path(
        "w/<slug:slug>/settings/secrets/<int:secret_id>/delete/",
        secret_views.secret_delete,
        name="secret_delete",
    ),
    path(
        "w/<slug:slug>/settings/internal-hosts/",
        secret_views.outbound_hosts,
        name="outbound_hosts",
    ),
]
