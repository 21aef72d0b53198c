"""The admin's launch pages: the same registered forms and launch functions as the runs page."""
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse

from curation import registry


def launch_view(model_admin, request, key):
    if not registry.can_launch(request.user):
        raise PermissionDenied("Launching runs needs staff status and the 'add run' permission.")
    stage = registry.stage(key)
    if stage is None:
        raise Http404(f"No stage called {key!r} can be launched here.")
    form = stage.form(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = stage.launch(form.params(), request.user)
        except registry.LaunchError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{stage.title}: run #{run.pk} {run.status}.")
            return redirect(reverse("curation:run_detail", args=[run.pk]))
    context = {
        **model_admin.admin_site.each_context(request), "title": f"Launch: {stage.title}", "form": form,
        "stage": stage, "stages": registry.stages(), "opts": model_admin.model._meta,
        "runs_url": reverse("admin:curation_run_changelist"),
    }
    return render(request, "admin/curation/launch.html", context)


def launch_urls(model_admin):
    """/admin/curation/run/launch/<stage>/, behind the admin's own login."""
    def view(request, key):
        return launch_view(model_admin, request, key)

    return [path("launch/<slug:key>/", model_admin.admin_site.admin_view(view), name="curation_launch")]
