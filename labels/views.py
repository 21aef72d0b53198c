"""Label an image from its detail page or the viewer; htmx gets the label panel back."""
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from curation.models import Image
from labels import edit


def _answer(request, image_id, error=None, status=200):
    if not request.htmx:
        if error:
            return HttpResponseBadRequest(error)
        return redirect(reverse("curation:image_detail", args=[image_id]))
    context = {"image_id": image_id, "labels": edit.of_image(image_id), "label_error": error}
    return render(request, "labels/_labels.html", context, status=status)


def _change(request, pk, apply):
    image = get_object_or_404(Image.objects.only("pk"), pk=pk)
    try:
        names = edit.clean_names(request.POST.get("name", ""))
    except edit.LabelError as exc:
        return _answer(request, image.pk, str(exc), status=400)
    apply(image.pk, names)
    return _answer(request, image.pk)


@login_required
@require_POST
def add(request, pk):
    return _change(request, pk, lambda image_id, names: edit.add([image_id], names, request.user))


@login_required
@require_POST
def remove(request, pk):
    return _change(request, pk, lambda image_id, names: edit.remove([image_id], names))
