"""Claiming a batch of a queue's images under a lease, and ending leases when decisions are written.

Two reviewers claiming at once never get the same pool image:
- on Postgres the candidates are read with SELECT ... FOR UPDATE SKIP LOCKED, so a second claim walks
  past the rows the first is taking instead of waiting for them or taking them too;
- on SQLite the whole claim is one write transaction (the project opens them IMMEDIATE), so claims
  run one after the other;
- on both, the unique (queue, image, lane) constraint is the last word: an insert that loses a race
  is dropped (ON CONFLICT DO NOTHING) and each claim reads back only the rows carrying its own token.
An expired lease goes back to the pool: the next claim in that lane takes the item over.
"""
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.db.models.functions import Mod
from django.utils import timezone

from curation import gallery
from team.models import QueueItem

SAMPLE_SCALE = 1000
# A claim whose candidates were taken by a claim that committed while it read them (their locks gone, so
# SKIP LOCKED did not skip them) looks again, with a fresh snapshot that sees those rows taken.
FRESH_TRIES = 3
# A multiplier prime to SAMPLE_SCALE spreads consecutive ids over the residues, so the overlap sample
# is not one run of neighbouring (often same-crawl) images.
SAMPLE_STRIDE = 7919


def in_sample(queue):
    """(annotation, name): whether an image is in the queue's overlap sample is `name < overlap_permille`."""
    return Mod(F("id") * SAMPLE_STRIDE + queue.pk, SAMPLE_SCALE), "team_sample"


def lanes_for(queue, user):
    """The lanes a reviewer claims from, in order: their overlap lane first, then the shared pool."""
    return ([user.pk] if user.pk in queue.overlap_pair() else []) + [QueueItem.POOL]


def candidates(queue, lane):
    """The view's images, in its order, that this lane has not yet handed out."""
    qs = gallery.filter_images(queue.view.querystring)
    if queue.overlap_permille:
        expr, name = in_sample(queue)
        qs = qs.annotate(**{name: expr})
        if lane == QueueItem.POOL:
            qs = qs.filter(**{f"{name}__gte": queue.overlap_permille})
        else:
            qs = qs.filter(**{f"{name}__lt": queue.overlap_permille})
    elif lane != QueueItem.POOL:
        return qs.none()
    return qs.exclude(Exists(QueueItem.objects.filter(queue=queue, lane=lane, image_id=OuterRef("pk"))))


def held(queue, user, now=None):
    """The reviewer's live leases in this queue (not decided, not expired)."""
    return QueueItem.objects.filter(queue=queue, reviewer=user, done=False, lease_until__gt=now or timezone.now())


def claim(queue, user, size=None):
    """Lease up to `size` images of the queue to `user` (keeping the leases they still hold, renewed).
    Returns the ids of every image the reviewer now holds, in the order the batch was taken."""
    # The viewer opens a batch as an ids= filter, which takes at most gallery.MAX_IDS.
    size = min(size or settings.SCENEIMG_TEAM_BATCH, gallery.MAX_IDS)
    now = timezone.now()
    until = now + timedelta(seconds=settings.SCENEIMG_TEAM_LEASE_SECONDS)
    token = uuid.uuid4().hex
    with transaction.atomic():
        need = size - held(queue, user, now).update(lease_until=until, claim=token)
        for lane in lanes_for(queue, user):
            if need <= 0:
                break
            need -= _take_expired(queue, user, lane, need, now, until, token)
            for _ in range(FRESH_TRIES):
                if need <= 0:
                    break
                found, taken = _take_fresh(queue, user, lane, need, until, token)
                need -= taken
                if not found:
                    break
    return list(QueueItem.objects.filter(queue=queue, reviewer=user, claim=token, done=False)
                .order_by("pk").values_list("image_id", flat=True))


def _locking(qs, **of):
    """FOR UPDATE SKIP LOCKED where the database has it; SQLite serialises write transactions instead."""
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True, **of)
    return qs


def _take_expired(queue, user, lane, need, now, until, token):
    expired = QueueItem.objects.filter(queue=queue, lane=lane, done=False, lease_until__lte=now)
    ids = list(_locking(expired.order_by("pk")).values_list("pk", flat=True)[:need])
    if not ids:
        return 0
    # Re-checked in the UPDATE itself: another claim may have taken an item since it was read.
    return expired.filter(pk__in=ids).update(reviewer=user, lease_until=until, claim=token)


def _take_fresh(queue, user, lane, need, until, token):
    qs = candidates(queue, lane)
    if connection.features.has_select_for_update_of:
        qs = _locking(qs, of=("self",))
    ids = list(qs.values_list("pk", flat=True)[:need])
    if not ids:
        return False, 0
    QueueItem.objects.bulk_create(
        [QueueItem(queue=queue, image_id=pk, lane=lane, reviewer=user, lease_until=until, claim=token)
         for pk in ids],
        ignore_conflicts=True,
    )
    return True, QueueItem.objects.filter(queue=queue, lane=lane, image_id__in=ids, claim=token).count()


def release(queue, user):
    """Give back the reviewer's live leases (they stop before the batch is done)."""
    return held(queue, user).update(lease_until=timezone.now(), claim="")


def decisions_written(user, decisions):
    """Review listener: a reviewer's keep or reject on an image they hold ends that lease; the item is done
    and remembers the decision (for agreement). Clearing a decision is no decision, and ends nothing."""
    if user is None or not user.pk:
        return
    by_decision = {}
    for image_id, decision in decisions.items():
        if decision is not None:
            by_decision.setdefault(decision, []).append(image_id)
    now = timezone.now()
    for decision, image_ids in by_decision.items():
        QueueItem.objects.filter(reviewer=user, image_id__in=image_ids, done=False).update(
            done=True, decision=decision, decided_at=now, lease_until=None)


def left(queue, user, limit=None):
    """(count, exact) of what this reviewer can still claim: a count of at most `limit` + 1 rows, never
    the whole view (an overlap reviewer's own sample, then the shared pool not done or leased)."""
    limit = limit or settings.SCENEIMG_TEAM_LEFT_LIMIT
    now = timezone.now()
    total = 0
    for lane in lanes_for(queue, user):
        busy = QueueItem.objects.filter(queue=queue, lane=lane, image_id=OuterRef("pk"))
        free = gallery.filter_images(queue.view.querystring, ordered=False)
        if queue.overlap_permille:
            expr, name = in_sample(queue)
            free = free.annotate(**{name: expr}).filter(
                **{f"{name}__{'gte' if lane == QueueItem.POOL else 'lt'}": queue.overlap_permille})
        # An item whose lease expired is back in the pool, so it counts as left.
        free = free.exclude(Exists(busy.filter(done=True))).exclude(Exists(busy.filter(lease_until__gt=now)))
        total += free.values("pk")[: limit + 1 - total].count()
        if total > limit:
            return limit, False
    return total, True
