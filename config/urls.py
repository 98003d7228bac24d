from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views
from config.views import healthz

urlpatterns = [
    path("", account_views.home, name="home"),
    path("", include("accounts.urls")),
    path("", include("workflows.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
