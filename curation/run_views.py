"""Runs: the list, a live progress row per run, cancel, and staff forms that launch stages.

A stage's launcher is looked up lazily, so a stage whose job module is not installed (or not written
yet) simply has no form here.
"""
import hashlib
import importlib
import json
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
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from curation import runs
from curation.models import Run
from sceneimg_site import queues

RUNS_PAGE = 50
# htmx stops polling when a response has this status (https://htmx.org/docs/#polling).
STOP_POLLING = 286


def can_launch(user):
    """The same rule as launching from the admin: staff with the permission to add runs."""
    return user.is_staff and user.has_perm("curation.add_run")


def staff_required(view):
    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not can_launch(request.user):
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
    return [(k, v) for k, v in sorted((run.counters or {}).items()) if not k.startswith("_")]


def can_cancel(user, run):
    return run.is_active and (user.is_staff or (run.created_by_id is not None and run.created_by_id == user.pk))


def row_context(request, run):
    return {"run": run, "progress": progress(run), "counters": counter_items(run),
            "can_cancel": can_cancel(request.user, run)}


# --- Launch forms ---------------------------------------------------------------------------------
# Each form launches the same Run as the stage's management command with --enqueue.

class LaunchError(Exception):
    """The launch was refused for a reason the person can fix (shown as a message)."""


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
                           widget=forms.Textarea(attrs={"rows": 5}), max_length=5_000_000)
    label = forms.CharField(required=False, max_length=200)
    workers = forms.IntegerField(min_value=1, max_value=64, initial=8)


class ClipForm(forms.Form):
    input = forms.CharField(initial="all", max_length=200,
                            help_text="a run id, an import label, or 'all' (images not yet scored)")
    indoor_margin = forms.FloatField(initial=0.0, help_text="keep when indoor - outdoor >= this")
    moderate_margin = forms.FloatField(required=False, help_text="also require moderate - max(tidy, messy) >= this")
    object_count_min = forms.IntegerField(required=False, min_value=0, help_text="runs Faster R-CNN")
    object_count_max = forms.IntegerField(required=False, min_value=0)
    detector_threshold = forms.FloatField(initial=0.5, min_value=0, max_value=1)
    limit = forms.IntegerField(required=False, min_value=1)
    label = forms.CharField(required=False, max_length=200)


class DedupForm(forms.Form):
    threshold = forms.IntegerField(min_value=0, max_value=32, required=False,
                                   help_text="max dHash distance (bits); default SCENEIMG_NEARDUP_THRESHOLD")
    label = forms.CharField(required=False, max_length=200)


class VlmForm(forms.Form):
    backend = forms.ChoiceField(choices=())
    model = forms.CharField(required=False, max_length=100, help_text="default per backend from settings")
    prompt = forms.CharField(required=False, max_length=100, help_text="prompt version name; default the active one")
    run = forms.IntegerField(required=False, min_value=1, help_text="images sighted, scored or judged in this run")
    decision = forms.ChoiceField(required=False, choices=())
    passed_clip = forms.BooleanField(required=False, label="Only images that passed a CLIP filter")
    limit = forms.IntegerField(required=False, min_value=1)
    min_score = forms.FloatField(min_value=0, max_value=1)
    workers = forms.IntegerField(min_value=1, max_value=64)
    timeout = forms.FloatField(min_value=1)

    def __init__(self, *args, **kwargs):
        from vlm.backends import BACKENDS
        from vlm.inputs import DECISION_CHOICES

        kwargs.setdefault("initial", {
            "backend": settings.SCENEIMG_VLM_BACKEND, "min_score": settings.SCENEIMG_VLM_MIN_SCORE,
            "workers": settings.SCENEIMG_VLM_WORKERS, "timeout": settings.SCENEIMG_VLM_TIMEOUT,
        })
        super().__init__(*args, **kwargs)
        self.fields["backend"].choices = [(b, b) for b in BACKENDS]
        self.fields["decision"].choices = [("", "—")] + [(d, d) for d in DECISION_CHOICES]

    def clean(self):
        data = super().clean()
        if not (data.get("run") or data.get("decision") or data.get("passed_clip")):
            raise forms.ValidationError("Say what to judge: a run, a final decision, or only images that passed CLIP.")
        return data


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


def _launch_import_folder(c, user):
    from crawl.jobs import import_folder_job

    params = {"path": c["path"], "recursive": c["recursive"], "label": c["label"]}
    return runs.launch(Run.Kind.IMPORT, import_folder_job, params, queue=queues.CRAWL, user=user,
                       label=c["label"] or f"folder {c['path']}"[:200])


def _launch_import_urls(c, user):
    from crawl.jobs import import_urls_job

    params = {"file": _save_url_list(c["urls"]), "label": c["label"], "workers": c["workers"]}
    return runs.launch(Run.Kind.IMPORT, import_urls_job, params, queue=queues.CRAWL, user=user,
                       label=c["label"] or "URL list (web)")


def _launch_clip(c, user):
    from curation import jobs
    from curation.scoring import DecisionRule, InputError, key_for_settings, select_image_ids

    rule = DecisionRule(indoor_margin=c["indoor_margin"], moderate_margin=c["moderate_margin"],
                        object_count_min=c["object_count_min"], object_count_max=c["object_count_max"],
                        detector_threshold=c["detector_threshold"])
    try:
        ids = select_image_ids(c["input"], key_for_settings(rule), c["limit"])
    except InputError as exc:
        raise LaunchError(str(exc).replace("--input", "input")) from None
    if not ids:
        raise LaunchError(f"Nothing to score for input {c['input']!r}: every image is already scored this way.")
    return jobs.launch_clip(c["input"], rule, ids, limit=c["limit"], user=user, label=c["label"])


def _launch_dedup(c, user):
    from curation import jobs

    return jobs.launch_dedup(c["threshold"], user=user, label=c["label"])


def _launch_vlm(c, user):
    """What `filter_vlm --enqueue` does for a selection (no folders or JSONL written from the web)."""
    from vlm import backends, jobs
    from vlm.inputs import InputError, select
    from vlm.prompts import PromptError, active_version, latest_version, sync_prompts

    backend = c["backend"]
    model = c["model"] or backends.default_model(backend)
    try:
        backends.make_backend(backend, model, timeout=c["timeout"]).close()  # a missing API key fails here
    except ValueError as exc:
        raise LaunchError(str(exc)) from None
    try:
        sync_prompts()
        version = latest_version(c["prompt"]) if c["prompt"] else active_version()
        if version is None:
            raise PromptError("no prompt versions: add prompts/v1.toml and run sync_prompts")
        selection = select(run=c["run"], decision=c["decision"] or None, passed_clip=c["passed_clip"],
                           limit=c["limit"])
    except (PromptError, InputError) as exc:
        raise LaunchError(str(exc).replace("--", "")) from None
    if not selection.ids:
        raise LaunchError("No images match that selection.")
    stage = {"prompt_version_id": version.pk, "backend": backend, "model": model, "min_score": c["min_score"],
             "workers": c["workers"], "timeout": c["timeout"], "seed": 0}
    params = {**stage, "prompt": version.name, "limit": c["limit"], "images": len(selection.ids),
              "inputs": {k: c[k] for k in ("run", "decision", "passed_clip") if c[k]},
              "selection_sha": hashlib.sha256(json.dumps(selection.ids).encode()).hexdigest()[:16]}
    size = max(1, settings.SCENEIMG_VLM_BATCH_SIZE)
    batches = [(f"b{n}", {**stage, "image_ids": selection.ids[i:i + size], "outputs": None, "batch_key": f"b{n}"})
               for n, i in enumerate(range(0, len(selection.ids), size))]
    return runs.launch(Run.Kind.VLM, jobs.filter_vlm_job, params, queue=queues.VLM, user=user,
                       label=f"VLM {version.name} {backend}/{model}", batches=batches)


def _launch_export(c, user):
    from curation import export_jobs

    return export_jobs.launch_export(c["filter"], c["format"], user=user)


@dataclass(frozen=True)
class Launcher:
    """One stage that can be launched from the web: its form, and the code it needs to exist."""

    key: str
    title: str
    requires: tuple  # "module:attribute" names; the form is left out unless all import
    form: type
    launch: object  # (cleaned_data, user) -> Run; raises LaunchError; None: the form's own launch(user)

    def available(self):
        for name in self.requires:
            module_name, _, attr = name.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                return False
            if not hasattr(module, attr):
                return False
        return True


def _crawl_form(name):
    from crawl import admin_launch

    return getattr(admin_launch, name)


LAUNCHERS = [
    Launcher("crawl", "Baidu keyword crawl", ("crawl.admin_launch:KeywordCrawlForm",),
             lambda *a, **kw: _crawl_form("KeywordCrawlForm")(*a, **kw), None),
    Launcher("similar", "Baidu reverse-image expansion", ("crawl.admin_launch:SimilarForm",),
             lambda *a, **kw: _crawl_form("SimilarForm")(*a, **kw), None),
    Launcher("import_folder", "Folder import", ("crawl.jobs:import_folder_job",), FolderImportForm,
             _launch_import_folder),
    Launcher("import_urls", "URL-list import", ("crawl.jobs:import_urls_job",), UrlListForm, _launch_import_urls),
    Launcher("clip", "CLIP filter", ("curation.jobs:launch_clip", "curation.scoring:select_image_ids"), ClipForm,
             _launch_clip),
    Launcher("dedup", "Near-duplicate grouping", ("curation.jobs:launch_dedup",), DedupForm, _launch_dedup),
    Launcher("vlm", "VLM judge", ("vlm.jobs:filter_vlm_job", "vlm.inputs:select", "vlm.prompts:active_version"),
             VlmForm, _launch_vlm),
    Launcher("export", "Export", ("curation.export_jobs:launch_export",), ExportLaunchForm, _launch_export),
]


def available_launchers():
    return [launcher for launcher in LAUNCHERS if launcher.available()]


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
    if before.isascii() and before.isdigit():
        qs = qs.filter(id__lt=int(before))
    page = list(qs[: RUNS_PAGE + 1])
    older = page[RUNS_PAGE - 1].pk if len(page) > RUNS_PAGE else None
    rows = [row_context(request, run) for run in page[:RUNS_PAGE]]
    older_params = request.GET.copy()
    if older:
        older_params["before"] = older
    allowed = can_launch(request.user)
    launchers = available_launchers() if allowed else []
    return render(request, "curation/runs.html", {
        "rows": rows, "older_url": f"?{older_params.urlencode()}" if older else None,
        "kinds": Run.Kind.values, "statuses": Run.Status.values, "kind": kind, "status": status,
        "launchers": [(launcher, launcher.form(prefix=launcher.key)) for launcher in launchers],
        "missing_launchers": [launcher.title for launcher in LAUNCHERS if launcher not in launchers]
        if allowed else [],
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
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect(reverse("curation:run_list"))


@require_POST
@staff_required
def run_launch(request, key):
    launcher = _launcher(key)
    form = launcher.form(request.POST, request.FILES, prefix=launcher.key)
    if not form.is_valid():
        messages.error(request, f"{launcher.title}: " + "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
        return redirect(reverse("curation:run_list"))
    try:
        run = form.launch(request.user) if launcher.launch is None else launcher.launch(form.cleaned_data, request.user)
    except LaunchError as exc:
        messages.error(request, f"{launcher.title}: {exc}")
        return redirect(reverse("curation:run_list"))
    messages.success(request, f"{launcher.title}: run #{run.pk} {run.status}.")
    return redirect(reverse("curation:run_list") + f"#run-{run.pk}")
