"""Runs: the list, a live progress row per run, cancel, and staff forms that launch stages.

A stage's launcher is looked up lazily, so a stage whose job module is not installed (or not written
yet) simply has no form here.
"""
import hashlib
import importlib
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from curation import runs
from curation.models import Run
from sceneimg_site import queues

RUNS_PAGE = 50
# htmx stops polling when a response has this status (https://htmx.org/docs/#polling).
STOP_POLLING = 286
# Counter keys that mean "one item finished", on top of Run.OUTCOME_KEYS.
EXTRA_DONE_KEYS = ("exported", "missing", "judged", "scored", "failed")


def staff_required(view):
    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can launch runs.")
        return view(request, *args, **kwargs)

    return wrapper


def items_done(run):
    keys = set(Run.OUTCOME_KEYS) | set(EXTRA_DONE_KEYS)
    return sum(v for k, v in (run.counters or {}).items() if k in keys and isinstance(v, int))


def progress(run):
    """What the progress bar shows: percent (None when unknown) and a short text."""
    done = items_done(run)
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
    return [(k, v) for k, v in sorted((run.counters or {}).items()) if not k.startswith("_")]


def can_cancel(user, run):
    return run.is_active and (user.is_staff or (run.created_by_id is not None and run.created_by_id == user.pk))


def row_context(request, run):
    return {"run": run, "progress": progress(run), "counters": counter_items(run),
            "can_cancel": can_cancel(request.user, run)}


# --- Launch forms ---------------------------------------------------------------------------------

class FolderImportForm(forms.Form):
    path = forms.CharField(label="Folder on the server", max_length=1000)
    recursive = forms.BooleanField(required=False, label="Include subfolders")
    label = forms.CharField(required=False, max_length=200)

    def clean_path(self):
        path = Path(self.cleaned_data["path"]).expanduser()
        if not path.is_absolute():
            raise forms.ValidationError("Give an absolute path on the server.")
        if not path.is_dir():
            raise forms.ValidationError(f"{path} is not a folder on the server.")
        return str(path.resolve())


class UrlListForm(forms.Form):
    urls = forms.CharField(label="URLs (one per line, or JSONL with url, page_url, title)",
                           widget=forms.Textarea(attrs={"rows": 6}), max_length=5_000_000)
    label = forms.CharField(required=False, max_length=200)
    workers = forms.IntegerField(min_value=1, max_value=64, initial=8)


class ExportLaunchForm(forms.Form):
    filter = forms.CharField(label="Gallery filter (querystring)", required=False, initial="final=keep",
                             max_length=2000)
    format = forms.ChoiceField(choices=[("zip", "zip"), ("folder", "folder on the server")], initial="zip")

    def clean_filter(self):
        from curation.gallery import FilterError, filter_images

        value = self.cleaned_data["filter"].strip().lstrip("?")
        try:
            filter_images(value)
        except FilterError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value


def _save_url_list(text):
    """Pasted URLs become a file the import job reads (content-addressed, so a retry reuses it)."""
    folder = Path(settings.VAR_DIR) / "url-lists"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()}.txt"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return str(path)


@dataclass(frozen=True)
class Launcher:
    """One stage that can be launched from the web: its form and how its params become a Run."""

    key: str
    title: str
    kind: str
    job: str  # "module:function"
    queue: str
    form: type
    to_params: object  # cleaned_data -> params (the job's keyword arguments)

    def job_func(self):
        module_name, _, func_name = self.job.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
        return getattr(module, func_name, None)

    def launch(self, cleaned, user):
        params = self.to_params(cleaned)
        return runs.launch(self.kind, self.job_func(), params, queue=self.queue, user=user,
                           label=params.get("label", "") or f"{self.title} (web)")


LAUNCHERS = [
    Launcher("import_folder", "Folder import", Run.Kind.IMPORT, "crawl.jobs:import_folder_job", queues.CRAWL,
             FolderImportForm,
             lambda c: {"path": c["path"], "recursive": c["recursive"], "label": c["label"]}),
    Launcher("import_urls", "URL-list import", Run.Kind.IMPORT, "crawl.jobs:import_urls_job", queues.CRAWL,
             UrlListForm,
             lambda c: {"file": _save_url_list(c["urls"]), "label": c["label"], "workers": c["workers"]}),
    Launcher("export", "Export", Run.Kind.EXPORT, "curation.export_jobs:export_job", queues.EXPORT,
             ExportLaunchForm, lambda c: {"filter": c["filter"], "format": c["format"]}),
]


def available_launchers():
    return [launcher for launcher in LAUNCHERS if launcher.job_func() is not None]


def _launcher(key):
    for launcher in available_launchers():
        if launcher.key == key:
            return launcher
    raise Http404(f"No stage called {key!r} can be launched here.")


# --- Views ----------------------------------------------------------------------------------------

@login_required
def run_list(request):
    runs.reap_stale_runs()
    qs = Run.objects.select_related("created_by").order_by("-id")
    kind, status = request.GET.get("kind", ""), request.GET.get("status", "")
    if kind in Run.Kind.values:
        qs = qs.filter(kind=kind)
    if status in Run.Status.values:
        qs = qs.filter(status=status)
    before = request.GET.get("before", "")
    if before.isdigit():
        qs = qs.filter(id__lt=int(before))
    page = list(qs[: RUNS_PAGE + 1])
    older = page[RUNS_PAGE - 1].pk if len(page) > RUNS_PAGE else None
    rows = [row_context(request, run) for run in page[:RUNS_PAGE]]
    older_params = request.GET.copy()
    if older:
        older_params["before"] = older
    launchers = available_launchers() if request.user.is_staff else []
    return render(request, "curation/runs.html", {
        "rows": rows, "older_url": f"?{older_params.urlencode()}" if older else None,
        "kinds": Run.Kind.values, "statuses": Run.Status.values, "kind": kind, "status": status,
        "launchers": [(launcher, launcher.form(prefix=launcher.key)) for launcher in launchers],
        "missing_launchers": [launcher.title for launcher in LAUNCHERS if launcher not in launchers]
        if request.user.is_staff else [],
    })


@login_required
def run_detail(request, run_id):
    run = get_object_or_404(Run.objects.select_related("created_by"), pk=run_id)
    return render(request, "curation/runs_detail.html", row_context(request, run))


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
            messages.info(request, f"Run #{run.pk} already ended ({run.status}).")
        else:
            raise PermissionDenied("Only staff or the person who launched a run can cancel it.")
    elif runs.cancel(run):
        messages.success(request, f"Run #{run.pk} cancelled.")
    run.refresh_from_db()
    if request.htmx:
        response = render(request, "curation/_run_row.html", row_context(request, run))
        response.status_code = STOP_POLLING if not run.is_active else 200
        return response
    return redirect(reverse("curation:run_list"))


@require_POST
@staff_required
def run_launch(request, key):
    launcher = _launcher(key)
    form = launcher.form(request.POST, prefix=launcher.key)
    if not form.is_valid():
        messages.error(request, f"{launcher.title}: " + "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
        return redirect(reverse("curation:run_list"))
    run = launcher.launch(form.cleaned_data, request.user)
    messages.success(request, f"{launcher.title}: run #{run.pk} {run.status}.")
    return redirect(reverse("curation:run_list") + f"#run-{run.pk}")
