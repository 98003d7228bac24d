from django.urls import path

from workflows import views

urlpatterns = [
    path("w/<slug:slug>/", views.workspace_home, name="workspace_home"),
]
