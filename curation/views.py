"""Gallery, review and image detail views. Thin: filtering lives in gallery.py, decisions in review.py."""
import mimetypes

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from curation import cards, chips, gallery, launch, registry, review, storage
from curation.models import Image, Review, Run

SELECTION_MAX = 5000  # ids in one "apply to selection" request; larger sets go through the filter
HEADER_IDS_MAX = 100  # more review ids than this travel in the response body, not the HX-Trigger header


def _int_list(text):
    """'1,2,3' (or repeated fields joined by the caller) -> [1, 2, 3]; ValueError on anything else."""
    return [int(part) for part in text.replace(" ", "").split(",") if part]


def _filter_panels(params):
    """The sidebar's own choices plus the registered panels' (sources, verdicts) and their templates."""
    context = {"sorts": list(gallery.SORT_LABELS.items()), "filter_panels": []}
    for panel in registry.filter_panels():
        context.update(panel.context(params))
        context["filter_panels"].append(panel.template)
    return context


def _gallery_context(request):
    params = request.GET
    qs = gallery.querystring_without(params, "after")
    context = {"qs": qs, "error": None, "images": [], "next_url": None, "active_filters": []}
    try:
        images, cursor = gallery.page(params)
    except gallery.FilterError as exc:
        context["error"] = str(exc)
        return context
    context["active_filters"] = chips.active_filters(params)
    context["images"] = cards.with_cards(images, qs)
    if cursor:
        sep = "&" if qs else ""
        context["next_url"] = f"{reverse('curation:gallery')}?{qs}{sep}after={cursor}"
    return context


@login_required
@require_GET
def gallery_view(request):
    context = _gallery_context(request)
    status = 400 if context["error"] else 200
    if request.htmx and not request.htmx.history_restore_request:
        if request.GET.get("after"):
            return render(request, "curation/_cards_page.html", context, status=status)
        if request.htmx.target == "results":
            return render(request, "curation/_results.html", context)
    context.update(_filter_panels(request.GET))
    context["filters"] = request.GET
    return render(request, "curation/gallery.html", context, status=status)


@login_required
@require_GET
def gallery_count(request):
    """The result count, loaded after the page: an estimate on big sets, never a full COUNT(*)."""
    try:
        count, exact = gallery.estimate_count(request.GET)
    except gallery.FilterError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    return render(request, "curation/_count.html", {"count": count, "exact": exact, "count_text": f"{count:,}"})


@login_required
@require_GET
def image_file(request, pk, kind):
    """Serve an image or its thumbnail to signed-in users only (media is not public)."""
    field = "thumbnail" if kind == "thumb" else "file"
    name = Image.objects.filter(pk=pk).values_list(field, flat=True).first()
    if not name:
        raise Http404("no such image")
    url = storage.delivery_url(name)
    if url:
        # A private bucket's presigned URL; the redirect may be cached only while the URL is valid.
        response = redirect(url)
        response["Cache-Control"] = f"private, max-age={settings.SCENEIMG_S3_URL_EXPIRY // 2}"
        return response
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404("image file missing from storage") from None
    response = FileResponse(handle, content_type=mimetypes.guess_type(name)[0] or "application/octet-stream")
    # Content-addressed names never change content, so browsers may keep them.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


def _card_images(ids, qs=""):
    return cards.with_cards(list(Image.objects.filter(pk__in=ids).only(*gallery.CARD_FIELDS).order_by("-pk")), qs)


def reviewed(response, reviews=(), run=None, undone=False):
    """Tell the client what changed (for its undo stack). Ids go in the HX-Trigger header only for
    small actions: proxies refuse headers of a few KB, so a larger action's ids ride in the body
    (a hidden element, see _undo_ids.html, that app.js reads from the response) and the header says so."""
    review_ids = [r.pk for r in reviews]
    image_ids = sorted({r.image_id for r in reviews})
    detail = {"count": len(review_ids), "run": run.pk if run else None}
    if len(review_ids) <= HEADER_IDS_MAX:
        detail.update(reviews=review_ids, images=image_ids)
    else:
        detail["in_body"] = True
        response.content += render_to_string(
            "curation/_undo_ids.html", {"reviews": review_ids, "images": image_ids, "undone": undone}
        ).encode()
    trigger_client_event(response, "undone" if undone else "reviewed", detail)
    return response


def _oob_cards(request, ids, qs, message=None, level="info"):
    images = _card_images(ids[: review.sync_limit()], qs)
    return render(request, "curation/_oob_cards.html",
                  {"images": images, "qs": qs, "message": message, "level": level})


@login_required
@require_POST
def decide(request, pk):
    """Keep, reject or clear one image. htmx gets the swapped card (or the detail's decision panel);
    the viewer, which draws the image's state itself, gets an empty 204 with the HX-Trigger header."""
    image = get_object_or_404(Image.objects.only("pk"), pk=pk)
    try:
        # A retry carries the client_id of the first try: it answers as the first did.
        reviews = review.set_decision([image.pk], request.POST.get("decision"), request.user,
                                      note=request.POST.get("note", ""),
                                      client_id=request.POST.get("client_id") or None)
    except review.ReviewError as exc:
        return HttpResponseBadRequest(str(exc))
    if request.POST.get("view") == "viewer":
        return reviewed(HttpResponse(status=204), reviews)
    qs = request.POST.get("qs", "")
    if not request.htmx:
        url = reverse("curation:image_detail", args=[pk])
        return redirect(f"{url}?{qs}" if qs else url)
    if request.POST.get("view") == "detail":
        image = Image.objects.get(pk=pk)
        response = render(request, "curation/_detail_decided.html",
                          {"image": image, "qs": qs, "reviews": _review_history(image)})
    else:
        response = render(request, "curation/_card.html", {"image": _card_images([pk], qs)[0], "qs": qs})
    return reviewed(response, reviews)


@login_required
@require_POST
def decide_selection(request):
    """Apply keep, reject or clear to the selected cards; the response swaps each card out of band."""
    try:
        ids = _int_list(request.POST.get("ids", ""))
    except ValueError:
        return HttpResponseBadRequest("ids: expected comma-separated image ids")
    if not ids:
        return HttpResponseBadRequest("ids: select at least one image")
    if len(ids) > SELECTION_MAX:
        return HttpResponseBadRequest(f"ids: at most {SELECTION_MAX} at once; use 'all matching' instead")
    try:
        reviews = review.set_decision(ids, request.POST.get("decision"), request.user,
                                      note=request.POST.get("note", ""))
    except review.ReviewError as exc:
        return HttpResponseBadRequest(str(exc))
    message = f"{len(reviews)} of {len(ids)} selected images changed."
    response = _oob_cards(request, ids, request.POST.get("qs", ""), message)
    return reviewed(response, reviews)


@login_required
@require_POST
def review_bulk(request):
    """Apply a decision to everything matching the filter: now when small, else as a background run."""
    qs = request.POST.get("qs", "")
    try:
        outcome, result = launch.request_bulk(qs, request.POST.get("decision"), request.user,
                                              note=request.POST.get("note", ""))
    except (review.ReviewError, gallery.FilterError) as exc:
        return HttpResponseBadRequest(str(exc))
    if outcome == "done":
        response = render(request, "curation/_flash.html",
                          {"message": f"{len(result)} matching images changed.", "level": "info"})
        response = reviewed(response, result)
    else:
        response = render(request, "curation/_flash.html", {
            "message": f"More than {review.sync_limit()} images match: background run #{result.pk} is "
                       "applying the decision. Reload when it is done.",
            "level": "info", "run": result,
        })
        response = reviewed(response, run=result)
    trigger_client_event(response, "refresh-results", {})
    return response


@login_required
@require_POST
def review_undo(request):
    """Undo the changes of earlier reviews (ids from the client's undo stack) or of a bulk run."""
    qs = request.POST.get("qs", "")
    if request.POST.get("run"):
        run_text = request.POST["run"].strip()
        if not (run_text.isascii() and run_text.isdigit()):
            return HttpResponseBadRequest(f"run: expected a run id, got {run_text!r}")
        run = get_object_or_404(Run, pk=int(run_text))
        try:
            undo_run = launch.launch_undo_review(run, request.user)
        except review.ReviewError as exc:
            return HttpResponseBadRequest(str(exc))
        # The client posts with swap "none", so the message must travel out of band.
        response = render(request, "curation/_flash.html", {
            "message": f"Background run #{undo_run.pk} is undoing bulk run #{run.pk}.", "level": "info",
            "run": undo_run, "oob": True,
        })
        return reviewed(response, run=undo_run, undone=True)
    try:
        review_ids = _int_list(request.POST.get("reviews", ""))
        only_image = _int_list(request.POST.get("image", ""))
    except ValueError:
        return HttpResponseBadRequest("reviews, image: expected comma-separated ids")
    if not review_ids:
        return HttpResponseBadRequest("reviews: nothing to undo")
    if len(only_image) > 1:
        return HttpResponseBadRequest("image: one image at most")
    if only_image:
        # The detail page undoes its own image only, even when the action touched several.
        review_ids = list(Review.objects.filter(pk__in=review_ids, image_id=only_image[0])
                          .values_list("pk", flat=True))
    reviews, skipped = review.undo(review_ids, request.user) if review_ids else ([], 0)
    ids = sorted({r.image_id for r in reviews})
    if reviews:
        message = f"Undone: {len(reviews)} image{'s' if len(reviews) != 1 else ''} restored."
    elif only_image and not review_ids:
        message = "Nothing to undo for this image."
    elif not skipped:
        message = "Nothing to undo: those images had already changed back."
    else:
        message = "Nothing undone."
    if skipped:
        message += (f" {skipped} image{'s were' if skipped != 1 else ' was'} decided again since"
                    " and kept that later decision.")
    if request.POST.get("view") == "detail" and only_image:
        # The detail page has no cards: its decision panel and history are what change.
        image = get_object_or_404(Image, pk=only_image[0])
        response = render(request, "curation/_detail_decided.html", {
            "image": image, "qs": qs, "reviews": _review_history(image), "message": message, "oob": True})
    else:
        response = _oob_cards(request, ids, qs, message)
    return reviewed(response, reviews, undone=True)


def _review_history(image):
    return list(image.reviews.select_related("user").order_by("-created_at", "-pk")[:200])


@login_required
@require_GET
def image_detail(request, pk):
    image = get_object_or_404(Image.objects.select_related("dup_group"), pk=pk)
    qs = gallery.querystring_without(request.GET, "after")
    try:
        prev_id, next_id = gallery.neighbours(request.GET, image)
        filter_error = None
    except gallery.FilterError as exc:
        prev_id = next_id = None
        filter_error = str(exc)
    group_members = []
    if image.dup_group_id:
        group_members = list(
            Image.objects.filter(dup_group_id=image.dup_group_id).exclude(pk=image.pk)
            .only(*gallery.CARD_FIELDS).order_by("pk")[:48]
        )
    context = {
        "image": image,
        "qs": qs,
        "filter_error": filter_error,
        "prev_id": prev_id,
        "next_id": next_id,
        "reviews": _review_history(image),
        "group_members": group_members,
        "detail_panels": [],
    }
    for panel in registry.detail_panels():
        context.update(panel.context(image))
        context["detail_panels"].append(panel.template)
    return render(request, "curation/image_detail.html", context)
