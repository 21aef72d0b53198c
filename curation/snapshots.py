"""Snapshots: an export's selection frozen with everything known about each image at that moment.

Freezing writes one SnapshotImage per image holding its export record as canonical JSON text, plus a
digest over those texts. Nothing edits a snapshot afterwards, and its images cannot be deleted while
it exists, so writing it again (curation.export.export_snapshot) always gives the same bytes.
"""
import hashlib
import json
import math

from django.db import connection
from django.utils import timezone

from curation import provenance
from curation.models import Snapshot, SnapshotImage

BATCH = 1000


def canonical_json(value):
    """One line of JSON that depends only on the value: sorted keys, no NaN or infinity (as null)."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except ValueError:  # a NaN or infinity somewhere: rare, so only then walk the whole value
        return json.dumps(_finite(value), ensure_ascii=False, sort_keys=True, allow_nan=False)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def freeze(tracker, filter_string, records, *, name="", user=None):
    """A complete Snapshot of `records`: (image id, final decision, export record) in image id order.

    Rows are written in batches outside one long transaction (so the run's progress and cancel work);
    a freeze that fails or is cancelled deletes what it wrote.
    """
    run = tracker.run
    if user is None and run is not None:
        user = run.created_by
    snapshot = Snapshot.objects.create(name=name[:200], filter=filter_string, created_by=user, run=run,
                                       created_at=timezone.now())
    digest, count, scorer_keys, batch = hashlib.sha256(), 0, set(), []
    try:
        for image_id, decision, rec in records:
            tracker.check_cancelled()
            line = canonical_json(rec)
            digest.update(line.encode() + b"\n")
            scorer_keys.update(s["scorer_key"] for s in rec.get("filter_scores", ()))
            batch.append(SnapshotImage(snapshot=snapshot, image_id=image_id, final_decision=decision, record=line))
            if len(batch) >= BATCH:
                count += _write(batch, tracker)
        count += _write(batch, tracker)
        sheet = provenance.snapshot_provenance(snapshot, scorer_keys)
        Snapshot.objects.filter(pk=snapshot.pk).update(
            image_count=count, digest=digest.hexdigest(), provenance=sheet, complete=True)
    except BaseException:
        snapshot.delete()
        raise
    return Snapshot.objects.get(pk=snapshot.pk)


def _write(batch, tracker):
    n = len(batch)
    if n:
        if connection.vendor == "postgresql":
            _copy(batch)
        else:
            SnapshotImage.objects.bulk_create(batch)
        tracker.count("frozen", n)
        batch.clear()
    return n


def _copy(batch):
    """Postgres: COPY, about four times faster than a multi-row INSERT of the same rows, whose every
    kilobyte-long record Django's psycopg cursor would quote into the statement."""
    table = SnapshotImage._meta.db_table
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f'COPY "{table}" (snapshot_id, image_id, final_decision, record) FROM STDIN') as copy:
            for row in batch:
                copy.write_row((row.snapshot_id, row.image_id, row.final_decision, row.record))


def rows(snapshot, *, with_files=True, chunk=BATCH, first=None, last=None):
    """The snapshot's rows in image id order, `chunk` at a time (keyset, so late chunks cost no more).

    with_files: also load each image's stored file name (row.image.file), for writing the images.
    first, last: only the rows whose image ids lie between them (both included).
    """
    qs = SnapshotImage.objects.filter(snapshot=snapshot).order_by("image_id")
    if first is not None:
        qs = qs.filter(image_id__gte=first)
    if last is not None:
        qs = qs.filter(image_id__lte=last)
    if with_files:
        qs = qs.select_related("image").only("image_id", "record", "image__file")
    else:
        qs = qs.only("image_id", "record")
    last = 0
    while True:
        page = list(qs.filter(image_id__gt=last)[:chunk])
        yield from page
        if len(page) < chunk:
            return
        last = page[-1].image_id


def slices(snapshot, size):
    """(first image id, last image id) of each run of `size` rows, in row order."""
    ids = SnapshotImage.objects.filter(snapshot=snapshot).order_by("image_id").values_list("image_id", flat=True)
    found, first, n = [], None, 0
    for image_id in ids.iterator(chunk_size=10_000):
        if n == 0:
            first = image_id
        n += 1
        if n == size:
            found.append((first, image_id))
            n = 0
    if n:
        found.append((first, image_id))
    return found


def complete():
    """Snapshots that finished freezing, newest first (an unfinished one is never listed or exported)."""
    return Snapshot.objects.filter(complete=True).select_related("created_by", "run")


def get(pk):
    return complete().get(pk=pk)


def records_of(snapshot, image_ids):
    """{image id: frozen record} for some images of a snapshot."""
    out = {}
    ids = sorted(image_ids)
    for i in range(0, len(ids), BATCH):
        chunk = ids[i:i + BATCH]
        for image_id, text in SnapshotImage.objects.filter(snapshot=snapshot, image_id__in=chunk).values_list(
                "image_id", "record"):
            out[image_id] = json.loads(text)
    return out

