"""The rows an ingest writes: each sighting's Source and, for a new picture, its Image, one batch per
transaction.

A batch's new Image rows and their first Sources commit together, so a worker killed at any point leaves
both or neither (files written before the commit and never given a row are what `check_storage` finds).
The images are inserted with one statement, the Sources with another, and near-duplicate grouping runs
once per batch, after the commit.
"""
import hashlib
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction

from crawl.models import Source
from curation.models import Image
from curation.neardup import assign_near_duplicates

Outcome = Source.Outcome


@dataclass
class Sighting:
    """Where one candidate was seen: becomes the Source row."""

    provider: str
    url: str = ""
    page_url: str = ""
    title: str = ""
    query: str = ""
    rank: int | None = None
    seed_image: Image | None = None
    seed_name: str = ""
    path: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Prepared:
    """A picture whose files are stored and whose Image row is not written yet. Plain values only, so
    a process that prepares pictures can hand them to the one that writes rows."""

    sha256: str
    file: str
    thumbnail: str
    width: int
    height: int
    format: str
    byte_size: int
    dhash: int

    def image(self):
        return Image(sha256=self.sha256, file=self.file, thumbnail=self.thumbnail, width=self.width,
                     height=self.height, format=self.format, byte_size=self.byte_size, dhash=self.dhash)


def url_hash(url):
    return hashlib.sha256(url.strip().encode("utf-8", "surrogatepass")).hexdigest()


def source_row(sighting, outcome, *, run=None, image=None, reason="", extra=None):
    """The unsaved Source for one sighting."""
    return Source(
        run=run, image=image, provider=sighting.provider, query=sighting.query[:300],
        seed_image=sighting.seed_image, seed_name=sighting.seed_name[:300], url=sighting.url,
        url_hash=url_hash(sighting.url) if sighting.url else "", page_url=sighting.page_url,
        title=sighting.title, rank=sighting.rank, path=sighting.path, outcome=outcome,
        reason=reason[:2000], extra={**sighting.extra, **(extra or {})},
    )


def on_image_stored(image_ids):
    """What must follow new images, once their rows are committed: near-duplicate grouping."""
    assign_near_duplicates(image_ids)


@dataclass
class Item:
    """One sighting on its way to becoming a Source: a prepared picture, or an outcome already known."""

    sighting: Sighting
    prepared: Prepared | None = None
    outcome: str = ""  # set when there is no picture to store: invalid, error, or a URL already seen
    reason: str = ""
    image_id: int | None = None  # the stored picture a URL already seen points at
    extra: dict | None = None


def _insert_images(rows):
    """Insert new Image rows; {sha256: Image} of those this call created. Sorted by sha256, so two
    writers inserting overlapping batches take the unique index's locks in one order: no deadlock."""
    rows = sorted(rows, key=lambda im: im.sha256)
    try:
        with transaction.atomic():
            Image.objects.bulk_create(rows)
        return {im.sha256: im for im in rows}
    except IntegrityError:  # another worker stored one of these pictures since we looked
        pass
    created = {}
    for im in rows:
        im.pk = None
        try:
            with transaction.atomic():
                im.save(force_insert=True)
            created[im.sha256] = im
        except IntegrityError:
            pass
    return created


def _images(items):
    """{sha256: Image} for the batch's pictures, inserting the new ones; and the sha256 created here."""
    shas = {i.prepared.sha256: i.prepared for i in items if i.prepared is not None}
    if not shas:
        return {}, set()
    images = {im.sha256: im for im in Image.objects.filter(sha256__in=list(shas))}
    created = _insert_images([p.image() for sha, p in shas.items() if sha not in images])
    images.update(created)
    missing = [sha for sha in shas if sha not in images]
    if missing:  # lost the race for these: another worker's rows
        images.update({im.sha256: im for im in Image.objects.filter(sha256__in=missing)})
    return images, set(created)


def _sources(items, images, created, run):
    first = set()
    rows = []
    for item in items:
        if item.prepared is None:
            image = Image(pk=item.image_id) if item.image_id else None
            rows.append(source_row(item.sighting, item.outcome, run=run, image=image, reason=item.reason,
                                   extra=item.extra))
            continue
        image = images[item.prepared.sha256]
        if image.sha256 in created and image.sha256 not in first:
            first.add(image.sha256)
            rows.append(source_row(item.sighting, Outcome.STORED, run=run, image=image, extra=item.extra))
        else:
            rows.append(source_row(item.sighting, Outcome.DUPLICATE, run=run, image=image,
                                   reason=f"same picture as #{image.pk}", extra=item.extra))
    return rows


def write(items, *, run=None, tracker=None):
    """Write one batch: new Image rows and every Source in one transaction; the Sources, in order."""
    with transaction.atomic():
        images, created = _images(items)
        rows = _sources(items, images, created, run)
        Source.objects.bulk_create(rows)
        if created:
            ids = [images[sha].pk for sha in sorted(created)]
            transaction.on_commit(lambda: on_image_stored(ids))
    if tracker is not None:
        counts = {}
        for row in rows:
            counts[row.outcome] = counts.get(row.outcome, 0) + 1
        for outcome, n in counts.items():
            tracker.count(outcome, n)
    return rows


