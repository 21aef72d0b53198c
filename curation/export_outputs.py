"""Where exports lie once written: web exports under SCENEIMG_EXPORT_DIR, or in media storage (a zip
streamed there from the worker's disk), an identical earlier export reused, old ones expired.

A run's `result` is a path on the machine that wrote it, or `storage:<name>` for media storage, which
every machine (and, by presigned URL, every browser) can read.
"""
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from curation.models import Run, Snapshot

STORAGE_PREFIX = "storage:"
STORAGE_FOLDER = "exports"


def export_root():
    """Where web-launched exports are written (SCENEIMG_EXPORT_DIR, default <var>/exports)."""
    root = settings.SCENEIMG_EXPORT_DIR or str(Path(settings.VAR_DIR) / "exports")
    return Path(root).resolve()


def output_path(run_id, fmt):
    """Where a web-launched export run writes its archive or folder."""
    root = export_root()
    root.mkdir(parents=True, exist_ok=True)
    return root / (f"export-{run_id}.zip" if fmt == "zip" else f"export-{run_id}")


def managed(out):
    """True for the outputs of web-launched exports (export_root), which the app may reuse and expire."""
    return Path(out).resolve().parent == export_root()


def to_storage():
    """Web zip exports go to media storage (SCENEIMG_EXPORT_TO_STORAGE; default: when media is on S3)."""
    value = settings.SCENEIMG_EXPORT_TO_STORAGE.strip().lower()
    if not value:
        return bool(settings.SCENEIMG_S3_BUCKET)
    return value in ("1", "true", "yes", "on")


def result_exists(result):
    """Whether the file or folder a run's result names is still there (and is one the app wrote)."""
    if result.startswith(STORAGE_PREFIX):
        return default_storage.exists(result[len(STORAGE_PREFIX):])
    path = Path(result).resolve()
    return path.is_relative_to(export_root()) and path.exists()


def reusable(snapshot, fmt, shard_size):
    """A finished export run whose snapshot has this one's filter, records and provenance (the code version
    aside: the file says which code wrote it), in this format, whose file is still there; else None."""
    same = Snapshot.objects.filter(filter=snapshot.filter, digest=snapshot.digest, complete=True,
                                   image_count=snapshot.image_count).exclude(pk=snapshot.pk)
    same = {s.run_id: s for s in same.exclude(run=None)}
    done = Run.objects.filter(pk__in=list(same), kind=Run.Kind.EXPORT, status=Run.Status.DONE).exclude(result="")
    for run in done.order_by("-pk"):
        if run.params.get("format", "zip") != fmt or _made_by(same[run.pk]) != _made_by(snapshot):
            continue
        if fmt == "webdataset" and run.params.get("shard_size") != shard_size:
            continue
        if result_exists(run.result):
            return run
    return None


def _made_by(snapshot):
    return {k: v for k, v in snapshot.provenance.items() if k != "code_version"}


def publish(out, fmt):
    """Where a finished export now lies, as a run's result: a web zip moves into media storage when
    to_storage() (streamed from the local file, then removed), anything else stays where it was written."""
    if fmt != "zip" or not to_storage() or not managed(out):
        return str(out)
    name = f"{STORAGE_FOLDER}/{Path(out).name}"
    default_storage.delete(name)  # a retried job writes its own file again
    with open(out, "rb") as fh:
        saved = default_storage.save(name, File(fh, name=Path(out).name))
    Path(out).unlink()
    return STORAGE_PREFIX + saved
