"""The export stage: the images matching a gallery filter, as a zip or a folder.

Layout (Hugging Face `imagefolder`, loadable with `load_dataset("imagefolder", data_dir=...)`):

    images/00000042.jpg      generated from the Image id; never from a URL or an uploaded name
    metadata.jsonl           one JSON object per image: file_name plus scores, verdicts, sources, decisions
    sceneimg.csv             the same rows flattened for spreadsheets (not named metadata.csv: the
                             imagefolder loader refuses two metadata files with different extensions)

The zip is written with ZIP_STORED (JPEG and PNG do not compress further) and streamed: each image
is copied from storage into the archive in chunks, never re-fetched from its URL.
"""
import csv
import io
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from curation import registry
from curation.gallery import FilterError, as_querydict, filter_images
from curation.models import Image, Run
from curation.querysets import id_chunks

log = logging.getLogger(__name__)

DEFAULT_FILTER = "final=keep"
FORMATS = ("zip", "folder")
CHUNK = 500
COPY_BUFFER = 1024 * 1024
METADATA_NAME = "metadata.jsonl"
CSV_NAME = "sceneimg.csv"
IMAGES_DIR = "images"

OWN_CSV_COLUMNS = (
    "file_name", "image_id", "sha256", "width", "height", "format", "byte_size",
    "final_decision", "auto_decision", "human_decision", "auto_reason",
    "clip_indoor_margin", "clip_moderate_margin", "object_count", "vlm_score", "uncalibrated",
)


def csv_columns():
    """curation's columns, then what crawl and vlm registered (verdicts, source URLs, queries)."""
    return OWN_CSV_COLUMNS + tuple(c for extra in registry.export_fields() for c in extra.csv_columns)


class ExportError(Exception):
    """The export cannot start: bad filter, bad format, or an output that already exists."""


def export_root():
    """Where web-launched exports are written (SCENEIMG_EXPORT_DIR, default <var>/exports)."""
    root = settings.SCENEIMG_EXPORT_DIR or str(Path(settings.VAR_DIR) / "exports")
    return Path(root).resolve()


def output_path(run_id, fmt):
    """Where a web-launched export run writes its archive or folder."""
    root = export_root()
    root.mkdir(parents=True, exist_ok=True)
    return root / (f"export-{run_id}.zip" if fmt == "zip" else f"export-{run_id}")


def archive_name(image):
    ext = {"jpeg": "jpg", "jpg": "jpg", "png": "png"}.get((image.format or "").lower(), "bin")
    return f"{IMAGES_DIR}/{image.pk:08d}.{ext}"


def matching(filter_string):
    """The Images an export takes, id order (stable across chunks). Raises ExportError on a bad filter."""
    try:
        return filter_images(as_querydict(filter_string), ordered=False).order_by("pk")
    except FilterError as exc:
        raise ExportError(f"--filter: {exc}") from None


def _chunks(qs):
    """Full Image rows with their scores and what the registered fields need, CHUNK at a time."""
    prefetch = ["filter_scores"] + [p for extra in registry.export_fields() for p in extra.prefetch]
    for ids in id_chunks(qs, CHUNK):
        yield list(Image.objects.filter(pk__in=ids).order_by("pk").prefetch_related(*prefetch))


def record(image, file_name):
    """The metadata.jsonl row for one image."""
    rec = {
        "file_name": file_name,
        "image_id": image.pk,
        "sha256": image.sha256,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "byte_size": image.byte_size,
        "final_decision": image.final_decision,
        "auto_decision": image.auto_decision,
        "human_decision": image.human_decision,
        "auto_reason": image.auto_reason,
        "clip_indoor_margin": image.clip_indoor_margin,
        "clip_moderate_margin": image.clip_moderate_margin,
        "object_count": image.object_count,
        "vlm_score": image.vlm_score,
        "uncalibrated": image.uncalibrated,
        "dup_group": image.dup_group_id,
        "filter_scores": [
            {"scorer_key": s.scorer_key, "scores": s.scores, "indoor_margin": s.indoor_margin,
             "moderate_margin": s.moderate_margin, "object_count": s.object_count, "passed": s.passed,
             "uncalibrated": s.uncalibrated}
            for s in image.filter_scores.all()
        ],
    }
    for extra in registry.export_fields():
        rec.update(extra.fields(image))
    return rec


_FORMULA = re.compile(r"^[=+\-@\t\r]")


def _cell(value):
    """CSV cell; text that a spreadsheet would run as a formula gets a leading quote (crawled titles)."""
    if value is None:
        return ""
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return value


def csv_row(rec, columns):
    flat = {k: rec.get(k) for k in columns}
    for extra in registry.export_fields():
        flat.update(extra.csv(rec))
    return [_cell(flat[k]) for k in columns]


def _open_stored(image):
    return default_storage.open(image.file.name, "rb")


class _ZipSink:
    def __init__(self, path):
        self.zf = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def add_image(self, name, image, src):
        info = zipfile.ZipInfo(name, date_time=image.created_at.timetuple()[:6])
        info.compress_type = zipfile.ZIP_STORED
        info.file_size = image.byte_size
        with self.zf.open(info, "w", force_zip64=image.byte_size > 2**31) as dst:
            shutil.copyfileobj(src, dst, COPY_BUFFER)

    def add_file(self, name, path):
        self.zf.write(path, name, compress_type=zipfile.ZIP_STORED)

    def close(self):
        self.zf.close()


class _FolderSink:
    def __init__(self, root):
        self.root = root
        (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)

    def add_image(self, name, image, src):
        with open(self.root / name, "wb") as dst:
            shutil.copyfileobj(src, dst, COPY_BUFFER)

    def add_file(self, name, path):
        shutil.copyfile(path, self.root / name)

    def close(self):
        pass


def check_output(out, fmt):
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out)
    if fmt == "zip" and out.exists():
        raise ExportError(f"{out} already exists; choose another --out or remove it")
    if fmt == "folder" and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder")
    if not out.parent.is_dir():
        raise ExportError(f"the folder {out.parent} does not exist")
    return out


def export(tracker, filter_string=DEFAULT_FILTER, out=None, fmt="zip"):
    """Write the images matching `filter_string` to `out`. Counts exported / missing on the tracker.

    A zip appears under its name only when complete (written as <out>.part, then renamed); a folder
    is filled in place. Returns the output path.
    """
    out = check_output(out, fmt)
    qs = matching(filter_string)
    tracker.set_total(qs.count())
    if fmt == "zip":
        partial = out.with_name(out.name + ".part")
        sink = _ZipSink(partial)
    else:
        partial = None
        out.mkdir(exist_ok=True)
        sink = _FolderSink(out)
    meta_fd, meta_path = tempfile.mkstemp(prefix="sceneimg-export-", suffix=".jsonl", dir=out.parent)
    csv_fd, csv_path = tempfile.mkstemp(prefix="sceneimg-export-", suffix=".csv", dir=out.parent)
    try:
        with os.fdopen(meta_fd, "w", encoding="utf-8") as meta, \
                os.fdopen(csv_fd, "w", encoding="utf-8", newline="") as csv_file:
            writer = csv.writer(csv_file)
            columns = csv_columns()
            writer.writerow(columns)
            for images in _chunks(qs):
                for image in images:
                    tracker.check_cancelled()
                    name = archive_name(image)
                    try:
                        src = _open_stored(image)
                    except OSError as exc:
                        # The row stays out of the metadata: an archive never names a file it lacks.
                        log.warning("export: image #%s has no readable file (%s); skipped", image.pk, exc)
                        tracker.count("missing")
                        continue
                    with src:
                        sink.add_image(name, image, src)
                    rec = record(image, name)
                    meta.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    writer.writerow(csv_row(rec, columns))
                    tracker.count("exported")
        sink.add_file(METADATA_NAME, meta_path)
        sink.add_file(CSV_NAME, csv_path)
        sink.close()
        if partial is not None:
            os.replace(partial, out)
    except BaseException:
        sink.close()
        if partial is not None and partial.exists():
            partial.unlink()
        raise
    finally:
        for path in (meta_path, csv_path):
            if os.path.exists(path):
                os.unlink(path)
    if tracker.run is not None:
        Run.objects.filter(pk=tracker.run.pk).update(result=str(out))
    return out


def read_metadata(zip_path):
    """The metadata.jsonl rows of an export zip (for tests and checks)."""
    with zipfile.ZipFile(zip_path) as zf:
        return [json.loads(line) for line in io.TextIOWrapper(zf.open(METADATA_NAME), encoding="utf-8")]
