"""The review viewer: one image large in the gallery's filter and order, fed as JSON batches, and its
decisions, several to a request. Filtering lives in gallery.py, decisions in review.py."""
import json

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation import gallery, review
from curation.models import Image

VIEWER_BATCH_MAX = 24  # images per viewer request; the viewer asks for a dozen at a time


def _viewer_gallery_url(qs, before):
    """The gallery starting at an image: `before` is the cursor of the image just above it."""
    params = "&".join(part for part in (qs, f"after={before}" if before else "") if part)
    return f"{reverse('curation:gallery')}?{params}" if params else reverse("curation:gallery")


def _viewer_item(image, qs, before, cursor, group_sizes, blind=False):
    # Verdicts and sources are prefetched for the whole batch (sorted here, not by the database).
    verdicts = sorted(image.verdicts.all(), key=lambda v: v.updated_at, reverse=True)[:5]
    sources = sorted(image.sources.all(), key=lambda s: s.pk)[:20]
    panel = render_to_string("curation/_viewer_side.html", {
        "image": image,
        "qs": qs,
        "group_size": group_sizes.get(image.dup_group_id, 0),
        "verdicts": verdicts,
        "sources": sources,
        "blind": blind,
    })
    return {
        "id": image.pk,
        "full_url": reverse("curation:image_full", args=[image.pk]),
        "decide_url": reverse("curation:decide", args=[image.pk]),
        "detail_url": reverse("curation:image_detail", args=[image.pk]) + (f"?{qs}" if qs else ""),
        "width": image.width,
        "height": image.height,
        "decision": "none" if blind else image.final_decision or "none",
        "human": "none" if blind else image.human_decision or "none",
        "cursor": cursor,
        "gallery_url": _viewer_gallery_url(qs, before) + f"#card-{image.pk}",
        "panel": panel,
    }


def _viewer_cursor_before(params, at):
    """The cursor that makes image `at` the first of the filtered list ("" when it is already first)."""
    if not (at.isascii() and at.isdigit()):
        raise gallery.FilterError(f"at: expected an image id, got {at!r}")
    image = get_object_or_404(Image, pk=int(at))
    prev_id, _ = gallery.neighbours(params, image)
    if prev_id is None:
        return ""
    prev = gallery.filter_images(params).filter(pk=prev_id).first()
    return gallery.cursor_for(prev, gallery.sort_name(gallery.as_querydict(params))).encode()


@login_required
@require_GET
def viewer(request):
    """The review viewer: one image large, the gallery's filter and order. Images arrive from viewer_items.
    It starts after the cursor `after`, or at the image `at` (an id), or at the top."""
    qs = gallery.querystring_without(request.GET, "after", "at")
    after = request.GET.get("after", "")
    try:
        gallery.page(request.GET, size=1)
        if request.GET.get("at"):
            after = _viewer_cursor_before(request.GET, request.GET["at"])
        error = None
    except gallery.FilterError as exc:
        error = str(exc)
    context = {"qs": qs, "after": after, "error": error,
               "gallery_url": _viewer_gallery_url(qs, after)}
    return render(request, "curation/viewer.html", context, status=400 if error else 200)


@login_required
@require_GET
def viewer_items(request):
    """The next `n` images after the cursor `after` (the gallery's keyset cursor), as JSON for the viewer:
    their full-image URLs, decide URLs, cursors and the side panel, rendered (and escaped) here."""
    try:
        n = min(max(int(request.GET.get("n", "12")), 1), VIEWER_BATCH_MAX)
    except ValueError:
        return HttpResponseBadRequest("n: expected a whole number")
    try:
        images, cursor = gallery.page(request.GET, size=n)
    except gallery.FilterError as exc:
        return HttpResponseBadRequest(str(exc))
    qs = gallery.querystring_without(request.GET, "after", "n")
    sort = gallery.sort_name(gallery.as_querydict(request.GET))
    full = {im.pk: im for im in Image.objects.filter(pk__in=[im.pk for im in images])
            .prefetch_related("sources", "verdicts__prompt_version")}
    groups = {im.dup_group_id for im in images if im.dup_group_id}
    group_sizes = dict(Image.objects.filter(dup_group_id__in=groups).values_list("dup_group_id")
                       .annotate(n=Count("id")).values_list("dup_group_id", "n")) if groups else {}
    items = []
    before = request.GET.get("after", "")
    # blind=1: what people decided is not shown (a second reviewer measured for agreement must not see
    # the first one's decision).
    blind = request.GET.get("blind") == "1"
    for im in images:
        own = gallery.cursor_for(im, sort).encode()
        items.append(_viewer_item(full[im.pk], qs, before, own, group_sizes, blind))
        before = own
    return JsonResponse({"items": items, "next": cursor})


VIEWER_DECISIONS_MAX = 50  # decisions in one viewer request; its queue sends what piled up meanwhile


def _viewer_items(text):
    """The viewer's `items` (a JSON list of {image, decision, client_id}); ValueError names what is wrong."""
    try:
        items = json.loads(text)
    except ValueError:
        items = None
    if not isinstance(items, list) or not 1 <= len(items) <= VIEWER_DECISIONS_MAX:
        raise ValueError(f"items: expected a JSON list of 1 to {VIEWER_DECISIONS_MAX} decisions")
    for item in items:
        if not (isinstance(item, dict) and type(item.get("image")) is int and isinstance(item.get("client_id"), str)):
            raise ValueError("items: each decision needs an image id (a number) and a client_id (text)")
    return items


@login_required
@require_POST
def decide_many(request):
    """The viewer's decisions, several to a request: each made in the order sent with its own client_id
    (a retried request makes none twice), each answered on its own, so one refused decision leaves the
    others made. The viewer reaches one decision per key press this way while a request is out."""
    try:
        items = _viewer_items(request.POST.get("items", ""))
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))
    made = review.set_decisions([(item["image"], item.get("decision"), item["client_id"]) for item in items],
                                request.user)
    results = [{"image": item["image"], "error": str(result)} if isinstance(result, review.ReviewError) else
               {"image": item["image"], "reviews": [r.pk for r in result]} for item, result in zip(items, made, strict=True)]
    return JsonResponse({"results": results})
