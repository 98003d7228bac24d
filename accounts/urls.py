from django.urls import include, path

from accounts import views

urlpatterns = [
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("workspaces/new/", views.workspace_create, name="workspace_create"),
    path("w/<slug:slug>/settings/", views.workspace_settings, name="workspace_settings"),
]
