"""Runs: the list, a live progress row per run, cancel, and staff forms that launch the registered stages."""
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from curation import registry, runs
from curation.models import Run

RUNS_PAGE = 50
# htmx stops polling when a response has this status (https://htmx.org/docs/#polling).
STOP_POLLING = 286


def launch_required(view):
    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not registry.can_launch(request.user):
            raise PermissionDenied("Only staff with the 'Can add run' permission can launch runs.")
        return view(request, *args, **kwargs)

    return wrapper


def progress(run):
    """What the progress bar shows: percent (None when unknown) and a short text."""
    done = run.processed
    if run.total:
        percent = min(100, round(100 * done / run.total))
        text = f"{done} / {run.total}"
    elif run.jobs_total > 1:
        percent = min(100, round(100 * run.jobs_done / run.jobs_total))
        text = f"{run.jobs_done} / {run.jobs_total} batches"
    else:
        percent, text = None, f"{done} done" if done else ""
    if run.status == Run.Status.DONE:
        percent = 100
    return {"percent": percent, "text": text}


def counter_items(run):
    """(name in words, number rounded for people) of each counter; keys starting with _ are internal."""
    return [(name.removesuffix("_usd").replace("_", " "), counter_text(name, value))
            for name, value in sorted((run.counters or {}).items()) if not name.startswith("_")]


def counter_text(name, value):
    if name.endswith("_usd"):
        return f"${value:,.4f}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def can_cancel(user, run):
    return run.is_active and (user.is_staff or (run.created_by_id is not None and run.created_by_id == user.pk))


def row_context(request, run):
    return {"run": run, "progress": progress(run), "counters": counter_items(run),
            "can_cancel": can_cancel(request.user, run)}


# --- Views ----------------------------------------------------------------------------------------

def _add_children(request, rows):
    """Each row's descendants, depth first under it (a pipeline is at most a few levels deep)."""
    level = rows
    while level:
        by_parent = {row["run"].pk: row for row in level}
        for row in level:
            row["children"] = []
        children = Run.objects.filter(parent__in=list(by_parent)).select_related("created_by").order_by("id")
        level = []
        for child in children:
            row = row_context(request, child)
            by_parent[child.parent_id]["children"].append(row)
            level.append(row)


@login_required
def run_list(request):
    return render(request, "curation/runs.html", _run_list_context(request))


def _run_list_context(request, bound=None):
    """The runs page; `bound` is a launch form refused just now, shown again with its values and errors."""
    runs.reap_stale_runs()
    qs = Run.objects.select_related("created_by").order_by("-id")
    kind, status = request.GET.get("kind", ""), request.GET.get("status", "")
    if kind in Run.Kind.values:
        qs = qs.filter(kind=kind)
    if status in Run.Status.values:
        qs = qs.filter(status=status)
    tree = not (kind or status)
    if tree:  # a pipeline's later stages are listed under the run that started them
        qs = qs.filter(parent__isnull=True)
    before = request.GET.get("before", "")
    if before.isascii() and before.isdigit():
        qs = qs.filter(id__lt=int(before))
    page = list(qs[: RUNS_PAGE + 1])
    older = page[RUNS_PAGE - 1].pk if len(page) > RUNS_PAGE else None
    rows = [row_context(request, run) for run in page[:RUNS_PAGE]]
    if tree:
        _add_children(request, rows)
    older_params = request.GET.copy()
    if older:
        older_params["before"] = older
    stages = registry.stages() if registry.can_launch(request.user) else []
    return {
        "rows": rows, "older_url": f"?{older_params.urlencode()}" if older else None,
        "kinds": Run.Kind.values, "statuses": Run.Status.values, "kind": kind, "status": status,
        "launchers": [(stage, bound if bound is not None and bound.prefix == stage.key else stage.form(prefix=stage.key))
                      for stage in stages],
        "refused": bound.prefix if bound is not None else None,
    }


@login_required
def run_detail(request, run_id):
    run = get_object_or_404(Run.objects.select_related("created_by"), pk=run_id)
    context = {**row_context(request, run), "children": list(run.children.order_by("id")), "run_panels": []}
    for panel in registry.run_panels():
        context.update(panel.context(run))
        context["run_panels"].append(panel.template)
    return render(request, "curation/runs_detail.html", context)


@login_required
def run_row(request, run_id):
    """The live row of one run; polled by htmx every couple of seconds while the run is active."""
    run = get_object_or_404(Run.objects.select_related("created_by"), pk=run_id)
    if run.is_active:
        runs.reap_stale_runs()
        run.refresh_from_db()
    template = "curation/_run_card.html" if request.GET.get("view") == "card" else "curation/_run_row.html"
    response = render(request, template, row_context(request, run))
    if not run.is_active:
        response.status_code = STOP_POLLING
    return response


@require_POST
@login_required
def run_cancel(request, run_id):
    run = get_object_or_404(Run, pk=run_id)
    if not can_cancel(request.user, run):
        if not run.is_active:
            note = (messages.INFO, f"Run #{run.pk} already ended ({run.status}).")
        else:
            raise PermissionDenied("Only staff or the person who launched a run can cancel it.")
    else:
        note = (messages.SUCCESS, f"Run #{run.pk} cancelled.") if runs.cancel(run) else None
    run.refresh_from_db()
    if request.htmx:
        # The swapped status says what happened; a message would only surface on some later page.
        view = request.POST.get("view")
        template = "curation/_run_card.html" if view == "card" else "curation/_run_row.html"
        response = render(request, template, row_context(request, run))
        response.status_code = STOP_POLLING if not run.is_active else 200
        return response
    if note:
        messages.add_message(request, *note)
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect(reverse("curation:run_list"))


@require_POST
@launch_required
def run_launch(request, key):
    stage = registry.stage(key)
    if stage is None:
        raise Http404(f"No stage called {key!r} can be launched here.")
    form = stage.form(request.POST, request.FILES, prefix=stage.key)
    if not form.is_valid():
        messages.error(request, f"{stage.title}: " + "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
        return render(request, "curation/runs.html", _run_list_context(request, form), status=400)
    try:
        run = stage.launch(form.params(), request.user)
    except registry.LaunchError as exc:
        messages.error(request, f"{stage.title}: {exc}")
        form.add_error(None, str(exc))
        return render(request, "curation/runs.html", _run_list_context(request, form), status=400)
    messages.success(request, f"{stage.title}: run #{run.pk} {run.status}.")
    return redirect(reverse("curation:run_list") + f"#run-{run.pk}")
