"""What changed between two snapshots: images that entered, left, or changed final decision, by reason.

For an image in both snapshots the two frozen records are compared, and the first reason (in order)
whose part of the record differs names the change. For an image in only one of them there is no
second record, so each reason looks for evidence of its kind of change between the two snapshots'
times (a review written, a verdict written); an image that did not exist at the earlier snapshot
"entered" as a new image. curation's own reasons are below; crawl and vlm register theirs.
"""
from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Q
from django.urls import reverse
from django.utils.http import urlencode

from curation import registry
from curation.models import AutoStage, FilterScore, Image, Review, SnapshotImage
from curation.snapshots import records_of

KINDS = ("entered", "left", "changed")
NEW_IMAGE = "new image"
OTHER_FILTER = "different filter"
OTHER = "other"
GALLERY_LINK_MAX = 1000  # ids in one gallery link; more would make the URL too long for some servers
IN_CHUNK = 500
DUPLICATE_STAGES = (AutoStage.NEAR_DUPLICATE.label, AutoStage.SEED_COPY.label)


def _human_differs(before, after):
    return before.get("human_decision") != after.get("human_decision")


def _reviewed_between(image_ids, since, until):
    return set(Review.objects.filter(image_id__in=image_ids, created_at__gt=since, created_at__lte=until)
               .values_list("image_id", flat=True))


def _became_duplicate(before, after):
    return after.get("auto_stage") in DUPLICATE_STAGES and before.get("auto_stage") not in DUPLICATE_STAGES


def _duplicate_now(image_ids, since, until):
    # Grouping keeps no timestamp: an image that left and is a duplicate now is taken to have become one.
    return set(Image.objects.filter(id__in=image_ids, auto_stage__in=(AutoStage.NEAR_DUPLICATE, AutoStage.SEED_COPY))
               .values_list("id", flat=True))


def _scores_differ(before, after):
    return before.get("filter_scores") != after.get("filter_scores")


def _scored_between(image_ids, since, until):
    return set(FilterScore.objects.filter(image_id__in=image_ids, created_at__gt=since, created_at__lte=until)
               .values_list("image_id", flat=True))


OWN_REASONS = (
    registry.DiffReason("human override", _human_differs, _reviewed_between, 10),
    registry.DiffReason("new duplicate", _became_duplicate, _duplicate_now, 20),
    registry.DiffReason("new CLIP score", _scores_differ, _scored_between, 40),
)


def reasons():
    """Every reason, most decisive first (a person beats a duplicate beats the scorers)."""
    return sorted([*OWN_REASONS, *registry.diff_reasons()], key=lambda r: r.order)


@dataclass
class SnapshotDiff:
    a: object
    b: object
    # kind -> reason -> sorted image ids
    groups: dict = field(default_factory=lambda: {kind: {} for kind in KINDS})
    # (decision in a, decision in b) -> count, for the images that changed decision
    transitions: Counter = field(default_factory=Counter)

    def count(self, kind):
        return sum(len(ids) for ids in self.groups[kind].values())

    def summary(self):
        """[(kind, total, [(reason, count, gallery link)])] for pages and the command."""
        return [(kind, self.count(kind), [(reason, len(ids), gallery_link(ids))
                                          for reason, ids in sorted(self.groups[kind].items())])
                for kind in KINDS]


def gallery_link(ids):
    """The gallery showing these images (the first GALLERY_LINK_MAX of them)."""
    return reverse("curation:gallery") + "?" + urlencode({"ids": ",".join(map(str, ids[:GALLERY_LINK_MAX]))})


def _decisions(snapshot):
    return dict(SnapshotImage.objects.filter(snapshot=snapshot).values_list("image_id", "final_decision"))


def _chunked(ids):
    ids = sorted(ids)
    return (ids[i:i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK))


def _evidence(reason, image_ids, since, until):
    found = set()
    for chunk in _chunked(image_ids):
        found |= reason.evidence(chunk, since, until)
    return found


def _created_after(image_ids, when):
    found = set()
    for chunk in _chunked(image_ids):
        found |= set(Image.objects.filter(Q(id__in=chunk) & Q(created_at__gt=when)).values_list("id", flat=True))
    return found


def diff(a, b):
    """What entered (in b, not a), left (in a, not b) and changed decision (in both) from a to b."""
    result = SnapshotDiff(a, b)
    before, after = _decisions(a), _decisions(b)
    entered = after.keys() - before.keys()
    left = before.keys() - after.keys()
    changed = {i for i in before.keys() & after.keys() if before[i] != after[i]}
    since, until = sorted((a.created_at, b.created_at))
    ordered = reasons()

    fallback = OTHER_FILTER if a.filter != b.filter else OTHER
    new_images = _created_after(entered, since)
    for kind, ids in (("entered", entered), ("left", left)):
        todo = set(ids)
        if kind == "entered":
            _put(result, kind, NEW_IMAGE, new_images)
            todo -= new_images
        for reason in ordered:
            hits = _evidence(reason, todo, since, until) & todo if todo else set()
            _put(result, kind, reason.label, hits)
            todo -= hits
        _put(result, kind, fallback, todo)

    records_a, records_b = records_of(a, changed), records_of(b, changed)
    for image_id in changed:
        label = next((r.label for r in ordered if r.differs(records_a[image_id], records_b[image_id])), OTHER)
        result.groups["changed"].setdefault(label, []).append(image_id)
        result.transitions[(before[image_id] or "none", after[image_id] or "none")] += 1
    for ids in result.groups["changed"].values():
        ids.sort()
    return result


def _put(result, kind, label, ids):
    if ids:
        result.groups[kind][label] = sorted(ids)
