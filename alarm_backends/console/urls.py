from django.contrib.auth import views as auth_views
from django.urls import path

from alarm_backends.console import views

app_name = "console"
urlpatterns = [
    path("", views.schedule_list, name="schedule"),
    path("workers/", views.workers, name="workers"),
    path("leadership/", views.leadership, name="leadership"),
    path("entry/<path:name>", views.entry_detail, name="entry"),
    path("action/<str:action>/<path:name>", views.entry_action, name="action"),
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
