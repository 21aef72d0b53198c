"""Large exports written by several workers: the snapshot's rows cut into parts, one RQ job each.

The run's first job freezes the snapshot and enqueues the parts (plan). Each part job reads its slice of
the rows and their images from media storage and saves them as one zip in media storage, under
`exports/parts/<run id>/`, since the workers share nothing else (write_part). The part that finishes last
puts the export together from the parts in row order, through the same writer a single job uses, so
the bytes are the same, and removes the parts (assemble). A cancelled or failed run keeps no parts
(remove_if_ended, after every part job).

A part file holds each found image as an entry named by its image id, then `rows.json`: the record
lines of every row of the slice (for the digest check and the metadata) and the ids whose file was
missing.
"""
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from curation import export, runs, snapshots
from curation.export_formats import COPY_BUFFER, ZipWriter
from curation.export_outputs import STORAGE_FOLDER
from curation.models import Run

ROWS_NAME = "rows.json"
PARTS_FOLDER = f"{STORAGE_FOLDER}/parts"
DONE_KEY = "_export_parts"  # the part numbers finished so far, in the run's counters


@dataclass(frozen=True)
class Part:
    index: int  # from 0, in row order
    count: int  # parts in the run
    first_id: int  # the slice: image ids first_id..last_id of the snapshot
    last_id: int

    def __str__(self):
        return f"part {self.index + 1} of {self.count} (images {self.first_id}-{self.last_id})"


def folder(run_id):
    return f"{PARTS_FOLDER}/{run_id}"


def part_name(run_id, index):
    return f"{folder(run_id)}/part-{index:05d}.zip"


def plan(tracker, snapshot, out, fmt):
    """The parts of a snapshot's export as (job key, job kwargs); [] when one job writes it: a small
    export, or parquet, which reads no images."""
    export.check_output(out, fmt)
    export.check_snapshot(snapshot)
    tracker.set_total(snapshot.image_count)
    size = settings.SCENEIMG_EXPORT_PART_SIZE
    if fmt == "parquet" or size < 1 or snapshot.image_count <= size:
        return []
    bounds = snapshots.slices(snapshot, size)
    return [(f"part-{i:05d}", {"part": i, "parts": len(bounds), "first_id": first, "last_id": last})
            for i, (first, last) in enumerate(bounds)]


def write_part(tracker, snapshot, out, fmt, shard_size, part):
    """Write one part to media storage; the last part done then writes the export. Any error fails the
    run, naming the part."""
    try:
        with tempfile.TemporaryDirectory(prefix="sceneimg-export-part-") as tmp:
            local = Path(tmp) / "part.zip"
            _write_local(tracker, snapshot, fmt, part, local)
            _save(part_name(tracker.run.pk, part.index), local)
        if _last_done(tracker.run.pk, part):
            assemble(tracker, snapshot, out, fmt, shard_size, part.count)
    except runs.Cancelled:
        raise
    except Exception as exc:
        raise export.ExportError(f"export {part} failed: {type(exc).__name__}: {exc}") from exc


def is_done(run_id, index):
    """Whether a part is in already: its file saved, its images counted, its job counted as finished."""
    counters = Run.objects.filter(pk=run_id).values_list("counters", flat=True).first() or {}
    return index in counters.get(DONE_KEY, [])


def _write_local(tracker, snapshot, fmt, part, path):
    writer = ZipWriter(path, snapshot.created_at)
    lines, missing = [], []
    try:
        rows = snapshots.rows(snapshot, first=part.first_id, last=part.last_id)
        for row, src in export.opened(tracker, rows, fmt):
            lines.append(row.record)
            if src is None:
                missing.append(row.image_id)
                continue
            with src as fh:
                writer.add_stream(str(row.image_id), fh, json.loads(row.record)["byte_size"])
        writer.add_bytes(ROWS_NAME, json.dumps({"rows": lines, "missing": missing}).encode())
        writer.close()
    except BaseException:
        writer.abort()
        raise


def _save(name, path):
    """Save a finished part under its own name, replacing what an earlier try of the same job left."""
    default_storage.delete(name)
    with open(path, "rb") as fh:
        saved = default_storage.save(name, File(fh, name=Path(name).name))
    if saved != name:
        raise export.ExportError(f"media storage saved the part as {saved}, not {name}")


def _last_done(run_id, part):
    """Record the part as done; True for the one that completes the set, which then writes the export.
    Under the run's row lock, so exactly one part sees the set complete. A run cancelled or failed
    meanwhile stops here."""
    with transaction.atomic():
        run = Run.objects.select_for_update().only("status", "counters").get(pk=run_id)
        if run.status != Run.Status.RUNNING:
            raise runs.Cancelled()
        done = set(run.counters.get(DONE_KEY, [])) | {part.index}
        run.counters[DONE_KEY] = sorted(done)
        Run.objects.filter(pk=run_id).update(counters=run.counters)
    return len(done) == part.count


def assemble(tracker, snapshot, out, fmt, shard_size, count):
    """Write the export from the parts, in order, as export_snapshot would from storage; then remove them."""
    out = export.check_output(out, fmt)
    output = export.Output(snapshot, out, fmt, shard_size or export.DEFAULT_SHARD_SIZE)
    try:
        for index in range(count):
            _add_part(tracker, output, part_name(tracker.run.pk, index))
        output.close()
    except BaseException:
        output.abort()
        raise
    remove(tracker.run.pk, _names(tracker.run.pk, count))
    return export.published(tracker, out, fmt)


def _add_part(tracker, output, name):
    with tempfile.TemporaryFile() as local:
        # A local copy: a zip is read by seeking, which an object in S3 does badly.
        with default_storage.open(name, "rb") as src:
            shutil.copyfileobj(src, local, COPY_BUFFER)
        local.seek(0)
        with zipfile.ZipFile(local) as part:
            body = json.loads(part.read(ROWS_NAME))
            missing = set(body["missing"])
            for line in body["rows"]:
                tracker.check_cancelled()
                rec = json.loads(line)
                if rec["image_id"] in missing:
                    output.skip(line)
                    continue
                with part.open(str(rec["image_id"])) as fh:
                    output.add(line, rec, fh)


def _names(run_id, count):
    return [part_name(run_id, index) for index in range(count)]


def remove(run_id, names):
    """Delete part files of a run (and, on local disk, their folder once empty)."""
    for name in names:
        default_storage.delete(name)
    try:
        Path(default_storage.path(folder(run_id))).rmdir()
    except (NotImplementedError, OSError):
        pass  # object storage has no folders; a folder still holding something stays


def remove_if_ended(run_id, count):
    """After each part job: a run that was cancelled or failed keeps no part files, also none that other
    parts saved before. (A cancel that no part job sees, the others all still queued, leaves the parts
    saved before it to purge_exports: strays.)"""
    if Run.objects.filter(pk=run_id, status__in=(Run.Status.CANCELLED, Run.Status.FAILED)).exists():
        remove(run_id, _names(run_id, count))


def strays():
    """{run id: its part files} for export runs no longer queued or running (or gone)."""
    try:
        folders, _ = default_storage.listdir(PARTS_FOLDER)
    except FileNotFoundError:  # on local disk, before the first large export
        return {}
    ids = {int(name) for name in folders if name.isdigit()}
    going = set(Run.objects.filter(pk__in=ids, status__in=Run.ACTIVE).values_list("pk", flat=True))
    found = {run_id: [f"{folder(run_id)}/{name}" for name in default_storage.listdir(folder(run_id))[1]]
             for run_id in sorted(ids - going)}
    return {run_id: names for run_id, names in found.items() if names}
