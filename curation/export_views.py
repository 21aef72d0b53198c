"""Export from the browser: choose a filter, follow the run's progress, download the zip."""
import json
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from curation import export, launch, storage
from curation.forms import ExportLaunchForm
from curation.gallery import FilterError, estimate_count, querystring_without
from curation.models import Run, Snapshot
from curation.registry import LaunchError
from curation.run_views import STOP_POLLING, row_context

RECENT = 20


def _initial_filter(request):
    """`?filter=...` wins; else the page's own querystring (a gallery link); else final=keep."""
    if "filter" in request.GET:
        return request.GET["filter"].lstrip("?")
    own = querystring_without(request.GET, "after", "format")
    return own or export.DEFAULT_FILTER


def _export_run(run_id):
    return get_object_or_404(Run.objects.select_related("created_by"), pk=run_id, kind=Run.Kind.EXPORT)


@login_required
def export_new(request):
    if request.method == "POST":
        form = ExportLaunchForm(request.POST)
        if form.is_valid():
            fmt = form.cleaned_data["format"]
            if fmt == "folder" and not request.user.is_staff:
                form.add_error("format", "Only staff can write an export to a folder on the server.")
            else:
                try:
                    run = launch.launch_export(form.params(), request.user)
                except LaunchError as exc:
                    form.add_error(None, str(exc))
                else:
                    messages.success(request, f"Export run #{run.pk} {run.status}.")
                    return redirect(reverse("curation:export_detail", args=[run.pk]))
    else:
        form = ExportLaunchForm(initial={"filter": _initial_filter(request)})
    # A refused export (unknown filter key, bad value, too many running) is the client's error: say so.
    status = 400 if request.method == "POST" and form.errors else 200
    filter_value = form["filter"].value() or ""
    try:
        estimate = estimate_count(filter_value)
    except FilterError:
        estimate = None
    recent = Run.objects.filter(kind=Run.Kind.EXPORT).select_related("created_by").order_by("-id")[:RECENT]
    return render(request, "curation/export.html", {
        "form": form, "estimate": estimate, "recent": [row_context(request, run) for run in recent],
    }, status=status)


@login_required
def export_count(request):
    """The export form's estimate for `filter` as it is being typed (htmx): never a full COUNT(*)."""
    try:
        # The export's own check, so the count refuses what starting the export would (an unknown key too).
        count, exact = estimate_count(export.check_filter(request.GET.get("filter", "").strip().lstrip("?")))
    except (export.ExportError, FilterError) as exc:
        return HttpResponse(f"filter: {exc}", status=400, content_type="text/plain")
    return render(request, "curation/_export_count.html", {"estimate": (count, exact)})


@login_required
def export_detail(request, run_id):
    run = _export_run(run_id)
    return render(request, "curation/export_detail.html", {**row_context(request, run), **_download(run)})


@login_required
def export_progress(request, run_id):
    """Polled by htmx while the export runs; answers 286 (stop polling) once it has ended."""
    run = _export_run(run_id)
    response = render(request, "curation/_run_export_status.html", {**row_context(request, run), **_download(run)})
    if not run.is_active:
        response.status_code = STOP_POLLING
    return response


def _download(run):
    path = finished_zip(run)
    stored = stored_zip(run)
    folder = finished_folder(run)
    return {
        "download_url": reverse("curation:export_download", args=[run.pk]) if path or stored else None,
        "download_size": path.stat().st_size if path else (default_storage.size(stored) if stored else None),
        "folder": str(folder) if folder and run.params.get("format") == "folder" else "",
        "files": [(name, reverse("curation:export_file", args=[run.pk, name]), size)
                  for name, size in folder_files(folder)] if folder else [],
        "snapshot": _snapshot_of(run),
    }


def _snapshot_of(run):
    """The snapshot a run froze, or the one it wrote again."""
    if run.params.get("snapshot"):
        return Snapshot.objects.filter(pk=run.params["snapshot"], complete=True).first()
    return Snapshot.objects.filter(run=run, complete=True).first()


def finished_folder(run):
    """The run's output folder, only if it is done, a folder format, and inside the export folder."""
    if run.status != Run.Status.DONE or run.params.get("format") not in export.FOLDER_FORMATS or not run.result:
        return None
    path = Path(run.result).resolve()
    if not path.is_relative_to(export.export_root()) or not path.is_dir():
        return None
    return path


def folder_files(folder):
    """[(name, size)] of the files at the top of an export folder that its manifest lists (shards, parquet,
    metadata, provenance) and the manifest itself; never the images/ folder's thousands of files."""
    try:
        listed = json.loads((folder / export.MANIFEST_NAME).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError):
        return []
    names = [f["name"] for f in listed if "/" not in f["name"]] + [export.MANIFEST_NAME]
    return [(name, (folder / name).stat().st_size) for name in names if (folder / name).is_file()]


def stored_zip(run):
    """The storage name of the run's zip when it went to media storage (export_outputs.publish) and is there."""
    if run.status != Run.Status.DONE or not run.result.startswith(export.STORAGE_PREFIX):
        return None
    name = run.result[len(export.STORAGE_PREFIX):]
    return name if default_storage.exists(name) else None


def finished_zip(run):
    """The run's zip, only if it is done, a zip, and inside the export folder (never an arbitrary path)."""
    if run.status != Run.Status.DONE or run.params.get("format", "zip") != "zip" or not run.result:
        return None
    if run.result.startswith(export.STORAGE_PREFIX):
        return None
    path = Path(run.result).resolve()
    root = export.export_root()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


@login_required
def export_download(request, run_id):
    run = _export_run(run_id)
    filename = f"sceneimg-export-{run.pk}.zip"
    stored = stored_zip(run)
    if stored:
        url = storage.delivery_url(stored, filename=filename)
        if url:
            return redirect(url)  # a presigned URL of the private bucket, valid SCENEIMG_S3_URL_EXPIRY seconds
        return FileResponse(default_storage.open(stored, "rb"), as_attachment=True, filename=filename,
                            content_type="application/zip")
    path = finished_zip(run)
    if path is None:
        raise Http404("This export has no file to download (not finished, a folder export, or removed).")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=filename, content_type="application/zip")


@login_required
def export_file(request, run_id, name):
    """One top-level file of a finished folder export (a shard, the parquet, the manifest, ...)."""
    run = _export_run(run_id)
    folder = finished_folder(run)
    sizes = dict(folder_files(folder)) if folder else {}
    if name not in sizes:
        raise Http404("No such file in this export.")
    return FileResponse(open(folder / name, "rb"), as_attachment=True, filename=f"sceneimg-export-{run.pk}-{name}")
