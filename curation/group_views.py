"""A near-duplicate group side by side: settle it in one key, or choose another representative."""
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from curation import neardup, registry, review, views
from curation.models import Image

MEMBERS_MAX = 200  # a group this large is a threshold problem, not something to compare by eye


def _members(group_id):
    members = list(Image.objects.filter(dup_group_id=group_id)
                   .only("id", "width", "height", "byte_size", "format", "final_decision", "human_decision",
                         "auto_decision", "auto_reason", "dup_group", "dup_pinned")
                   .order_by("id")[:MEMBERS_MAX + 1])
    # The representative first, then the largest: the order in which a person would keep them.
    members.sort(key=lambda m: (m.pk != group_id, -m.width * m.height, m.pk))
    facts = registry.image_facts([m.pk for m in members])
    for number, m in enumerate(members, 1):
        m.number = number
        m.facts = facts.get(m.pk, [])
    return members


def _group_of(pk):
    """The group `pk` names: its representative's id, or the group the image now belongs to."""
    return Image.objects.filter(pk=pk).values_list("dup_group_id", flat=True).first()


@login_required
@require_GET
def group_detail(request, pk):
    group_id = _group_of(pk)
    if group_id is None:
        return render(request, "curation/group.html", {"pk": pk, "members": []}, status=404)
    if group_id != pk:
        return redirect("curation:group", group_id)
    members = _members(group_id)
    context = {"pk": pk, "group_id": group_id, "members": members[:MEMBERS_MAX],
               "truncated": len(members) > MEMBERS_MAX}
    return render(request, "curation/group.html", context)


def _back(request, group_id):
    url = reverse("curation:group", args=[group_id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_POST
def keep_best(request, pk):
    """The representative is kept and every other member rejected, each as a person's decision."""
    group_id = _group_of(pk)
    if group_id != pk:
        return HttpResponseBadRequest(f"image #{pk} does not represent a near-duplicate group (any more)")
    others = list(Image.objects.filter(dup_group_id=pk).exclude(pk=pk).values_list("id", flat=True))
    reviews = review.set_decision([pk], "keep", request.user, note=f"best of near-duplicate group #{pk}")
    reviews += review.set_decision(others, "reject", request.user, note=f"near-duplicate of #{pk}, which was kept")
    if not request.htmx:
        return redirect("curation:group", pk)
    response = render(request, "curation/_group_members.html", {"group_id": pk, "members": _members(pk)})
    return views.reviewed(response, reviews)


@login_required
@require_POST
def choose(request, pk):
    """Make another member the group's representative."""
    text = request.POST.get("image", "")
    if not (text.isascii() and text.isdigit()):
        return HttpResponseBadRequest("image: expected the id of a member of the group")
    chosen = int(text)
    group_id = _group_of(pk)
    if group_id is None or _group_of(chosen) != group_id:
        return HttpResponseBadRequest(f"image: #{chosen} is not in the same near-duplicate group as #{pk}")
    neardup.choose_representative(chosen)
    return _back(request, chosen)
