from django.contrib import admin
from django.urls import include, path, re_path

from accounts import views as account_views
from config.views import healthz
from workflows.integrations.api import api
from workflows.integrations.api import not_found as api_not_found
from workflows.integrations.mcp_server import mcp_endpoint

urlpatterns = [
    path("", account_views.home, name="home"),
    path("", include("accounts.urls")),
    path("", include("workflows.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/v1/", api.urls),
    re_path(r"^api/v1/", api_not_found),  # unknown API paths answer JSON too
    path("mcp", mcp_endpoint, name="mcp"),
]
