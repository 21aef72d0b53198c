from functools import wraps

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from django_rq import urls as rq_urls

from sceneimg_site.throttle import LoginView


def superuser_only(view):
    """The RQ dashboard can empty queues and delete or requeue any job: superusers only, not every
    staff member (launching runs needs staff with curation.add_run, which must not reach this)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_superuser):
            raise PermissionDenied("the RQ dashboard is for superusers")
        return view(request, *args, **kwargs)

    return wrapped


def _rq_patterns():
    api = rq_urls.get_api_urlpatterns()
    for pattern in api:
        # The JSON stats also answer to an API token; none is configured, so superusers only.
        pattern.callback = superuser_only(pattern.callback)
    return api + rq_urls.get_admin_urlpatterns(view_wrapper=superuser_only)


urlpatterns = [
    # Browsers and crawlers ask for /favicon.ico whatever the page's link tag says.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("django-rq/", include((_rq_patterns(), "django_rq"), namespace="django_rq")),
    path("vlm/", include("vlm.urls")),
    path("labels/", include("labels.urls")),
    path("dashboard/", include("dashboard.urls")),
    path("team/", include("team.urls")),
    path("", include("curation.urls")),
]
