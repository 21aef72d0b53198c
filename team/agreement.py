"""Agreement between a queue's two overlap reviewers, and the images they disagree on."""
import math
from dataclasses import dataclass

from django.db.models import Max

from curation.models import Image, Review
from team.models import QueueItem

DISAGREEMENTS_MAX = 500  # listed on one page; settle those, and the next ones appear


@dataclass(frozen=True)
class Agreement:
    both: int  # images both reviewers decided
    agreed: int
    kappa: float | None  # None: nothing to compare, or one label only (kappa is undefined then)


def paired_decisions(queue):
    """{image_id: (a's decision, b's decision)} for the sample images both overlap reviewers decided."""
    if not queue.overlap_pair() or queue.overlap_a_id == queue.overlap_b_id:
        return {}
    rows = (QueueItem.objects.filter(queue=queue, done=True, decision__isnull=False,
                                     lane__in=[queue.overlap_a_id, queue.overlap_b_id])
            .values_list("image_id", "lane", "decision"))
    by_image = {}
    for image_id, lane, decision in rows:
        by_image.setdefault(image_id, {})[lane] = decision
    return {image_id: (lanes[queue.overlap_a_id], lanes[queue.overlap_b_id])
            for image_id, lanes in by_image.items() if len(lanes) == 2}


def agreement(queue):
    pairs = list(paired_decisions(queue).values())
    if not pairs:
        return Agreement(0, 0, None)
    a, b = zip(*pairs, strict=True)
    agreed = sum(1 for x, y in pairs if x == y)
    if len(set(a) | set(b)) < 2:
        return Agreement(len(pairs), agreed, None)
    from sklearn.metrics import cohen_kappa_score  # 2 s of import that every command and worker would pay

    kappa = float(cohen_kappa_score(a, b))
    return Agreement(len(pairs), agreed, None if math.isnan(kappa) else kappa)


def disagreements(queue, limit=DISAGREEMENTS_MAX):
    """The images the two reviewers decided differently, newest first: each with both decisions, the
    image as it stands now, and whether someone has decided it since both of them (settled)."""
    decided = dict(QueueItem.objects.filter(queue=queue, done=True, lane__in=[queue.overlap_a_id, queue.overlap_b_id])
                   .values_list("image_id").annotate(last=Max("decided_at")).values_list("image_id", "last"))
    pairs = {pk: ab for pk, ab in paired_decisions(queue).items() if ab[0] != ab[1]}
    ids = sorted(pairs, reverse=True)[:limit]
    last_review = dict(Review.objects.filter(image_id__in=ids).values_list("image_id")
                       .annotate(last=Max("created_at")).values_list("image_id", "last"))
    images = Image.objects.in_bulk(ids)
    rows = []
    for pk in ids:
        settled = last_review.get(pk) is not None and decided.get(pk) is not None and last_review[pk] > decided[pk]
        rows.append({"image": images[pk], "a": pairs[pk][0], "b": pairs[pk][1], "settled": settled})
    return rows
