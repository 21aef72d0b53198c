"""Saved views: save the gallery's filter with a name, list, open, export, delete."""
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from curation import gallery
from team import saved


def export_url(querystring):
    """The export page with this filter filled in."""
    return f"{reverse('curation:export_new')}?{urlencode({'filter': querystring})}"


def gallery_url(querystring, name="curation:gallery"):
    return f"{reverse(name)}?{querystring}" if querystring else reverse(name)


@login_required
@require_http_methods(["GET", "POST"])
def view_list(request):
    """GET: the views this user may open. POST (name, qs, shared): save the filter `qs` as a view."""
    if request.method == "POST":
        try:
            view, created = saved.save_view(request.user, request.POST.get("name"), request.POST.get("qs", ""),
                                            shared=request.POST.get("shared") in ("1", "on", "true"))
        except saved.ViewError as exc:
            return HttpResponseBadRequest(f"Cannot save this view: {exc}", content_type="text/plain")
        messages.success(request, f"View “{view.name}” {'saved' if created else 'replaced'}.")
        return redirect("team:view_detail", pk=view.pk)
    views = list(saved.visible_to(request.user))
    return render(request, "team/views.html", {"views": views})


@login_required
@require_GET
def view_detail(request, pk):
    view = get_object_or_404(saved.visible_to(request.user), pk=pk)
    try:
        count, exact = gallery.estimate_count(view.querystring)
        error = None
    except gallery.FilterError as exc:
        # A filter valid when saved can stop being valid (a snapshot or image it names was removed).
        count, exact, error = None, True, str(exc)
    return render(request, "team/view_detail.html", {
        "view": view, "count": count, "exact": exact, "error": error,
        "gallery_url": gallery_url(view.querystring),
        "viewer_url": gallery_url(view.querystring, "curation:viewer"),
        "export_url": export_url(view.querystring),
        "queues": list(view.queues.order_by("-id")),
        "can_edit": view.owner_id == request.user.pk,
    })


@login_required
@require_POST
def view_delete(request, pk):
    view = get_object_or_404(saved.visible_to(request.user), pk=pk)
    if view.owner_id != request.user.pk:
        return HttpResponseForbidden("Only its owner can delete a view.")
    if view.queues.exists():
        return HttpResponseBadRequest("This view is used by a review queue; delete the queue first.",
                                      content_type="text/plain")
    view.delete()
    messages.info(request, f"View “{view.name}” deleted.")
    return redirect("team:view_list")
