"""Review queues: staff hand a saved view to reviewers; each reviewer claims batches and reviews them in
the viewer; staff see progress, the overlap reviewers' agreement, and settle their disagreements."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required, user_passes_test
from django.db.models import Count, Q
from django.http import HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from curation import gallery, review
from team import agreement, leases, saved
from team.forms import QueueForm
from team.models import Queue, QueueItem

staff_required = user_passes_test(lambda user: user.is_active and user.is_staff)


def viewer_url(queue, image_ids):
    """The viewer over exactly the images the reviewer holds, in the view's order. The view's filter itself
    is left out: a held image must stay in the batch even once it stops matching (e.g. "unreviewed")."""
    try:
        sort = gallery.sort_name(queue.view.querystring)
    except gallery.FilterError:
        sort = "new"
    sort = "new" if sort == gallery.SEARCH_SORT else sort
    # In a queue that measures agreement, nobody sees what others decided (it would sway the second one).
    blind = "&blind=1" if queue.overlap_permille else ""
    return f"{reverse('curation:viewer')}?ids={','.join(map(str, image_ids))}&sort={sort}{blind}"


def _may_see(queue, user):
    return user.is_staff or queue.reviewers.filter(pk=user.pk).exists()


@login_required
@require_GET
def my_queues(request):
    """The queues assigned to this user, with what is left, what they hold and what they did."""
    queues = list(request.user.review_queues.select_related("view").order_by("-id"))
    done = dict(QueueItem.objects.filter(queue__in=queues, reviewer=request.user, done=True)
                .values_list("queue_id").annotate(n=Count("id")).values_list("queue_id", "n"))
    rows = []
    for queue in queues:
        try:
            left, exact = leases.left(queue, request.user)
        except gallery.FilterError:
            left, exact = None, True
        rows.append({"queue": queue, "left": left, "exact": exact, "done": done.get(queue.pk, 0),
                     "held": leases.held(queue, request.user).count()})
    context = {"rows": rows, "all_queues": None}
    if request.user.is_staff:
        context["all_queues"] = list(Queue.objects.select_related("view").order_by("-id")[:200])
    return render(request, "team/my_queues.html", context)


@login_required
@staff_required
@require_http_methods(["GET", "POST"])
def queue_new(request):
    views = saved.visible_to(request.user)
    if request.method == "POST":
        form = QueueForm(request.POST, views=views)
        if form.is_valid():
            queue = form.save(request.user)
            messages.success(request, f"Queue “{queue.name}” created.")
            return redirect("team:queue_detail", pk=queue.pk)
        status = 400
    else:
        form = QueueForm(views=views, initial={"view": request.GET.get("view")})
        status = 200
    return render(request, "team/queue_new.html", {"form": form}, status=status)


@login_required
@require_GET
def queue_detail(request, pk):
    queue = get_object_or_404(Queue.objects.select_related("view", "overlap_a", "overlap_b"), pk=pk)
    if not _may_see(queue, request.user):
        return HttpResponseForbidden("This queue is not assigned to you.")
    per_reviewer = {row["reviewer"]: row for row in QueueItem.objects.filter(queue=queue).values("reviewer").annotate(
        decided=Count("id", filter=Q(done=True)), holding=Count("id", filter=Q(done=False)))}
    reviewers = [{"user": user, **per_reviewer.get(user.pk, {"decided": 0, "holding": 0})}
                 for user in queue.reviewers.order_by("username")]
    return render(request, "team/queue_detail.html", {
        "queue": queue, "reviewers": reviewers, "agreement": agreement.agreement(queue),
        "overlap_percent": queue.overlap_permille / 10,
        "is_reviewer": any(row["user"].pk == request.user.pk for row in reviewers),
    })


@login_required
@require_POST
def queue_claim(request, pk):
    """Lease the next batch to this reviewer and open the viewer on it."""
    queue = get_object_or_404(Queue.objects.select_related("view"), pk=pk)
    if not queue.reviewers.filter(pk=request.user.pk).exists():
        return HttpResponseForbidden("This queue is not assigned to you.")
    try:
        ids = leases.claim(queue, request.user)
    except gallery.FilterError as exc:
        return HttpResponseBadRequest(f"The queue's view no longer works: {exc}", content_type="text/plain")
    if not ids:
        messages.info(request, f"Nothing left for you in “{queue.name}”.")
        return redirect("team:my_queues")
    return redirect(viewer_url(queue, ids))


@login_required
@require_POST
def queue_release(request, pk):
    queue = get_object_or_404(Queue, pk=pk)
    released = leases.release(queue, request.user)
    messages.info(request, f"{released} image{'s' if released != 1 else ''} given back to “{queue.name}”.")
    return redirect("team:my_queues")


@login_required
@staff_required
@require_GET
def disagreements(request, pk):
    queue = get_object_or_404(Queue.objects.select_related("overlap_a", "overlap_b"), pk=pk)
    return render(request, "team/disagreements.html", {
        "queue": queue, "rows": agreement.disagreements(queue), "agreement": agreement.agreement(queue)})


@login_required
@staff_required
@require_POST
def settle(request, pk, image_id):
    """A person's decision like any other (curation's review path), noted as settling this queue's pair."""
    queue = get_object_or_404(Queue, pk=pk)
    try:
        review.set_decision([image_id], request.POST.get("decision"), request.user,
                            note=f"settled a disagreement in queue “{queue.name}”")
    except review.ReviewError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    return redirect("team:disagreements", pk=queue.pk)
