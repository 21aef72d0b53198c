"""The export stage: freeze the images matching a gallery filter as a snapshot, then write the snapshot.

A snapshot (curation/snapshots.py) holds each image's export record as it was; writing one again,
today or in a year, gives the same bytes. Formats (curation/export_formats.py):

    zip, folder    Hugging Face `imagefolder` (`load_dataset("imagefolder", data_dir=...)`):
                   images/00000042.jpg (named from the Image id; never from a URL or an uploaded name),
                   metadata.jsonl (one record per image), sceneimg.csv (the same, flattened for
                   spreadsheets; not metadata.csv, which the loader would take for a second metadata file)
    webdataset     tar shards sceneimg-000000.tar, ... of `<id>.jpg` + `<id>.json` samples
    parquet        metadata.parquet: the flat columns of sceneimg.csv plus each record as JSON

Every format also carries provenance.csv (where each image came from and what judged it) and
manifest.json (the snapshot, its provenance, and a sha256 per file). Images are copied from storage
in chunks, never re-fetched from their URL.
"""
import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from curation import provenance, registry, snapshots
from curation.export_formats import FolderWriter, ParquetRows, ShardWriter, ZipWriter
from curation.export_outputs import STORAGE_PREFIX, export_root, managed, output_path, publish, reusable  # noqa: F401
from curation.gallery import VIEW_STATE, FilterError, as_querydict, fields, filter_images
from curation.models import AutoStage, Image, Run
from curation.querysets import id_chunks

log = logging.getLogger(__name__)

DEFAULT_FILTER = "final=keep"
FORMATS = ("zip", "folder", "webdataset", "parquet")
FOLDER_FORMATS = ("folder", "webdataset", "parquet")  # written as a folder of files
CHUNK = 500
DEFAULT_SHARD_SIZE = 1000
METADATA_NAME = "metadata.jsonl"
CSV_NAME = "sceneimg.csv"
PROVENANCE_NAME = "provenance.csv"
PARQUET_NAME = "metadata.parquet"
MANIFEST_NAME = "manifest.json"
IMAGES_DIR = "images"

# name -> parquet type; the CSV has the same columns. New ones go at the end: readers index by position.
OWN_COLUMNS = {
    "file_name": "string", "image_id": "int", "sha256": "string", "width": "int", "height": "int",
    "format": "string", "byte_size": "int", "final_decision": "string", "auto_decision": "string",
    "human_decision": "string", "auto_reason": "string", "clip_indoor_margin": "float",
    "clip_moderate_margin": "float", "object_count": "int", "vlm_score": "float", "uncalibrated": "bool",
    "auto_stage": "string", "dup_group": "int", "first_seen": "string",
}
OWN_CSV_COLUMNS = tuple(OWN_COLUMNS)


def csv_columns():
    """curation's columns, then what crawl and vlm registered (verdicts, source URLs, queries)."""
    return OWN_CSV_COLUMNS + tuple(c for extra in registry.export_fields() for c in extra.csv_columns)


def parquet_columns():
    """(name, type) of metadata.parquet: the CSV's columns (registered ones as text) and the whole record."""
    return [(c, OWN_COLUMNS.get(c, "string")) for c in csv_columns()] + [("metadata", "string")]


class ExportError(Exception):
    """The export cannot start: bad filter, bad format, or an output that already exists."""


def _extension(fmt):
    return {"jpeg": "jpg", "jpg": "jpg", "png": "png"}.get((fmt or "").lower(), "bin")


def archive_name(image):
    return f"{IMAGES_DIR}/{image.pk:08d}.{_extension(image.format)}"


def check_filter(filter_string):
    """The filter as a QueryDict, refusing keys that are no gallery filter: an export of 'everything'
    because of a misspelt key (or junk keys that make each request new work) is never what was meant."""
    qd = as_querydict(filter_string).copy()
    for key in VIEW_STATE:  # a copied link carries them; they select nothing, so they are dropped
        qd.pop(key, None)
    known = fields()
    unknown = sorted(key for key in qd if key not in known)
    if unknown:
        raise ExportError(f"unknown filter key {', '.join(repr(k) for k in unknown)} "
                          "(the gallery's filters are listed in docs/reviewing.md)")
    try:
        filter_images(qd, ordered=False)
    except FilterError as exc:
        raise ExportError(str(exc)) from None
    return qd


def matching(filter_string):
    """The Images an export takes, id order (stable across chunks). Raises ExportError on a bad filter."""
    try:
        qd = check_filter(filter_string)
    except ExportError as exc:
        raise ExportError(f"--filter: {exc}") from None
    return filter_images(qd, ordered=False).order_by("pk")


def check_user_limit(user):
    """Refuse a new export when `user` already has SCENEIMG_EXPORT_MAX_ACTIVE_PER_USER queued or running."""
    limit = settings.SCENEIMG_EXPORT_MAX_ACTIVE_PER_USER
    if user is None or not user.pk or limit <= 0:
        return
    active = Run.objects.filter(kind=Run.Kind.EXPORT, created_by=user, status__in=Run.ACTIVE).count()
    if active >= limit:
        raise ExportError(f"you already have {active} export(s) queued or running (at most {limit} at once); "
                          "wait for one to finish or cancel it")


def _chunks(qs):
    """Full Image rows with their scores and what the registered fields need, CHUNK at a time."""
    prefetch = ["filter_scores"] + [p for extra in registry.export_fields() for p in extra.prefetch]
    for ids in id_chunks(qs, CHUNK):
        yield list(Image.objects.filter(pk__in=ids).order_by("pk").prefetch_related(*prefetch))


def record(image, file_name=None):
    """The metadata.jsonl row for one image: what a snapshot freezes."""
    rec = {
        "file_name": file_name or archive_name(image),
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
        "auto_stage": AutoStage(image.auto_stage).label if image.auto_stage is not None else None,
        "clip_indoor_margin": image.clip_indoor_margin,
        "clip_moderate_margin": image.clip_moderate_margin,
        "object_count": image.object_count,
        "vlm_score": image.vlm_score,
        "uncalibrated": image.uncalibrated,
        "dup_group": image.dup_group_id,
        "first_seen": image.created_at.isoformat() if image.created_at else None,
        "filter_scores": [
            {"scorer_key": s.scorer_key, "scores": s.scores, "indoor_margin": s.indoor_margin,
             "moderate_margin": s.moderate_margin, "object_count": s.object_count, "passed": s.passed,
             "uncalibrated": s.uncalibrated}
            for s in sorted(image.filter_scores.all(), key=lambda s: s.scorer_key)
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


def flat_row(rec, columns):
    flat = {k: rec.get(k) for k in columns}
    for extra in registry.export_fields():
        flat.update(extra.csv(rec))
    return {k: flat[k] for k in columns}


def csv_row(rec, columns):
    return [_cell(v) for v in flat_row(rec, columns).values()]


def provenance_csv_row(rec, columns):
    row = provenance.row(rec)
    return [_cell(row.get(c)) for c in columns]


def provenance_csv_rows(snapshot):
    """The rows of a snapshot's provenance.csv, header first, read from its frozen records only (so the
    sheet never changes); the same rows as in its exports."""
    columns = provenance.columns()
    yield list(columns)
    for row in snapshots.rows(snapshot, with_files=False):
        yield provenance_csv_row(json.loads(row.record), columns)


def _open_stored(image):
    return default_storage.open(image.file.name, "rb")


def check_output(out, fmt):
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out)
    if fmt == "zip" and out.exists():
        raise ExportError(f"{out} already exists; choose another --out or remove it")
    if fmt in FOLDER_FORMATS and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder")
    if not out.parent.is_dir():
        raise ExportError(f"the folder {out.parent} does not exist")
    return out


def export(tracker, filter_string=DEFAULT_FILTER, out=None, fmt="zip", *, name="", user=None, shard_size=None,
           write=None):
    """Freeze the images matching `filter_string` as a snapshot, then write it to `out` with `write`
    (default export_snapshot; a queued run may hand the writing to part jobs instead).

    Counts frozen / exported / missing on the tracker. Returns the output path.
    """
    out = check_output(out, fmt)
    snapshot = freeze(tracker, filter_string, name=name, user=user)
    earlier = reusable(snapshot, fmt, shard_size or DEFAULT_SHARD_SIZE) if managed(out) else None
    if earlier is not None:
        # The same images with the same records: that run's file is this export, byte for byte but
        # for the snapshot's id and time. Writing it again would only fill the disk.
        tracker.count("reused")
        if tracker.run is not None:
            Run.objects.filter(pk=tracker.run.pk).update(result=earlier.result, notice=(
                f"Nothing changed since export run #{earlier.pk} (same filter, format and records): "
                "its file is reused."))
        return earlier.result
    return (write or export_snapshot)(tracker, snapshot, out, fmt, shard_size=shard_size)


def freeze(tracker, filter_string=DEFAULT_FILTER, *, name="", user=None):
    """A new snapshot of the images matching `filter_string`, each with its export record as it is now."""
    qs = matching(filter_string)
    tracker.set_total(qs.count())
    records = ((image.pk, image.final_decision, record(image)) for images in _chunks(qs) for image in images)
    return snapshots.freeze(tracker, filter_string, records, name=name, user=user)


class _SideFiles:
    """The files written beside the images (metadata, CSVs, parquet), kept in temporary files until the
    images are in, then added to the archive in a fixed order."""

    def __init__(self, folder, fmt):
        self.folder, self.fmt, self.paths, self.handles = folder, fmt, {}, {}
        names = [PROVENANCE_NAME]
        if fmt in ("zip", "folder"):
            names = [METADATA_NAME, CSV_NAME, PROVENANCE_NAME]
        for name in names:
            fd, path = tempfile.mkstemp(prefix="sceneimg-export-", suffix="-" + name, dir=folder)
            self.paths[name] = path
            self.handles[name] = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self.csv_columns = csv_columns()
        self.provenance_columns = provenance.columns()
        self.writers = {name: csv.writer(fh) for name, fh in self.handles.items() if name.endswith(".csv")}
        if CSV_NAME in self.writers:
            self.writers[CSV_NAME].writerow(self.csv_columns)
        self.writers[PROVENANCE_NAME].writerow(self.provenance_columns)
        self.parquet = None
        if fmt == "parquet":
            fd, path = tempfile.mkstemp(prefix="sceneimg-export-", suffix="-" + PARQUET_NAME, dir=folder)
            os.close(fd)
            self.paths[PARQUET_NAME] = path
            self.parquet = ParquetRows(path, parquet_columns())

    def add(self, line, rec):
        if METADATA_NAME in self.handles:
            self.handles[METADATA_NAME].write(line + "\n")
            self.writers[CSV_NAME].writerow(csv_row(rec, self.csv_columns))
        self.writers[PROVENANCE_NAME].writerow(provenance_csv_row(rec, self.provenance_columns))
        if self.parquet is not None:
            self.parquet.add({**flat_row(rec, self.csv_columns), "metadata": line})

    def add_to(self, writer):
        for fh in self.handles.values():
            fh.close()
        if self.parquet is not None:
            self.parquet.close()
            self.parquet = None
            writer.add_file(PARQUET_NAME, self.paths[PARQUET_NAME])
        for name in (METADATA_NAME, CSV_NAME, PROVENANCE_NAME):
            if name in self.paths:
                writer.add_file(name, self.paths[name])

    def remove(self):
        for fh in self.handles.values():
            fh.close()
        if self.parquet is not None:
            self.parquet.close()
        for path in self.paths.values():
            if os.path.exists(path):
                os.unlink(path)


def _writer(fmt, out, when, shard_size):
    if fmt == "zip":
        return ZipWriter(out, when)
    if fmt == "webdataset":
        return ShardWriter(out, when, shard_size)
    return FolderWriter(out, when)


def _add_image(writer, fmt, rec, src):
    if fmt == "webdataset":
        sample = dict(rec)
        sample.pop("file_name")  # the imagefolder path; a shard's sample is named by its key
        meta = snapshots.canonical_json(sample).encode()
        writer.add_sample(f"{rec['image_id']:08d}", [
            (_extension(rec["format"]), src, rec["byte_size"]), ("json", io.BytesIO(meta), len(meta)),
        ])
    else:
        writer.add_stream(rec["file_name"], src, rec["byte_size"])


def manifest(snapshot, fmt, shard_size, counts, files):
    """manifest.json: nothing in it depends on when or where it was written, so it is reproducible too."""
    body = {
        "snapshot": {"id": snapshot.pk, "name": snapshot.name, "filter": snapshot.filter,
                     "created_at": snapshot.created_at.isoformat(), "image_count": snapshot.image_count,
                     "digest": snapshot.digest},
        "format": fmt,
        "counts": counts,
        "provenance": snapshot.provenance,
        "files": [f.as_dict() for f in files],
    }
    if fmt == "webdataset":
        body["shard_size"] = shard_size
    return (json.dumps(body, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


def check_snapshot(snapshot):
    if not snapshot.complete:
        raise ExportError(f"snapshot #{snapshot.pk} was never completed (its freeze failed or was cancelled)")


class Output:
    """An export being written, one snapshot row after another in row order: the images through the
    format's writer, the side files beside them, then the manifest. Whoever hands the rows over (this
    process reading storage, or the job putting together the parts that other workers wrote), the same
    rows give the same bytes."""

    def __init__(self, snapshot, out, fmt, shard_size):
        self.snapshot, self.fmt, self.shard_size = snapshot, fmt, shard_size
        self.writer = _writer(fmt, out, snapshot.created_at, shard_size)
        try:
            self.sides = _SideFiles(Path(out).parent, fmt)
        except BaseException:
            self.writer.abort()
            raise
        self.digest = hashlib.sha256()
        self.counts = {"exported": 0, "missing": 0}

    def add(self, line, rec, src):
        """A row whose image is `src` (a readable file; None for parquet, which takes no images)."""
        self.digest.update(line.encode() + b"\n")
        if self.fmt != "parquet":
            _add_image(self.writer, self.fmt, rec, src)
        self.sides.add(line, rec)
        self.counts["exported"] += 1

    def skip(self, line):
        """A row whose image has no readable file: it stays out of the metadata, as an archive never
        names a file it lacks."""
        self.digest.update(line.encode() + b"\n")
        self.counts["missing"] += 1

    def close(self):
        if self.digest.hexdigest() != self.snapshot.digest:
            raise ExportError(f"snapshot #{self.snapshot.pk}: its rows are not what was frozen (digest differs)")
        self.sides.add_to(self.writer)
        self.writer.add_bytes(MANIFEST_NAME, manifest(self.snapshot, self.fmt, self.shard_size, self.counts,
                                                      self.writer.files))
        self.writer.close()
        self.sides.remove()

    def abort(self):
        self.writer.abort()
        self.sides.remove()


def opened(tracker, rows, fmt):
    """(row, its image file to open with `with`, or None when the file cannot be read) per snapshot row,
    checking for a cancel before each. Counts missing at once and exported once the row is handled.
    Parquet takes no images: its rows come with an empty context."""
    for row in rows:
        tracker.check_cancelled()
        if fmt == "parquet":
            yield row, contextlib.nullcontext()
        else:
            try:
                src = _open_stored(row.image)
            except OSError as exc:
                log.warning("export: image #%s has no readable file (%s); skipped", row.image_id, exc)
                tracker.count("missing")
                yield row, None
                continue
            yield row, src
        tracker.count("exported")


def export_snapshot(tracker, snapshot, out, fmt="zip", *, shard_size=None):
    """Write a frozen snapshot to `out` as `fmt`. The same snapshot, format and shard size always give
    the same bytes. Counts exported / missing on the tracker; returns the output path."""
    out = check_output(out, fmt)
    check_snapshot(snapshot)
    shard_size = shard_size or DEFAULT_SHARD_SIZE
    tracker.set_total(snapshot.image_count)
    output = Output(snapshot, out, fmt, shard_size)
    try:
        for row, src in opened(tracker, snapshots.rows(snapshot, with_files=fmt != "parquet"), fmt):
            if src is None:
                output.skip(row.record)
                continue
            with src as fh:
                output.add(row.record, json.loads(row.record), fh)
        output.close()
    except BaseException:
        output.abort()
        raise
    return published(tracker, out, fmt)


def published(tracker, out, fmt):
    """Move a written export where it is kept (publish) and set the run's result to it."""
    result = publish(out, fmt)
    if tracker.run is not None:
        Run.objects.filter(pk=tracker.run.pk).update(result=result)
    return out if result == str(out) else result


def read_metadata(zip_path):
    """The metadata.jsonl rows of an export zip (for tests and checks)."""
    with zipfile.ZipFile(zip_path) as zf:
        return [json.loads(line) for line in io.TextIOWrapper(zf.open(METADATA_NAME), encoding="utf-8")]
