"""The web routes: the operators' console (``alarm_backends.console``) at the root."""

from django.urls import include, path

urlpatterns = [path("", include("alarm_backends.console.urls"))]
