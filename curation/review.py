"""Human decisions: set, clear and undo them, one image or many, always leaving a Review row.

A Review records the human decision before (`old`) and after (`new`) a change; None means "no
human decision", so the final decision falls back to the automatic one. Undo is itself a change
and is recorded the same way, so the history reads as it happened.
"""
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q

from curation import gallery, registry
from curation.models import Decision, Image, Review
from curation.querysets import id_chunks

CHUNK = 1000
NOTE_MAX = 500
CLIENT_ID_MAX = 64  # Review.client_id's max_length


class ReviewError(ValueError):
    """An invalid review request; the message says what was wrong."""


def parse_decision(value):
    """'keep' / 'reject' -> that decision; 'clear' / '' / None -> None (no human decision)."""
    if value in (None, "", "clear", "none"):
        return None
    if value in Decision.values:
        return value
    raise ReviewError(f"decision: expected keep, reject or clear, got {value!r}")


def _apply(changes, user, notes, expected=None, client_id=None):
    """Set the human decision of each image in `changes` {image_id: new}, recording a Review for every
    real change. `notes` maps image_id -> note. With `expected` {image_id: value}, an image whose
    human decision is not that value (under the row lock) is left alone. A `client_id` (one image
    only) already recorded returns that Review and changes nothing. Returns the created Reviews."""
    if not changes:
        return []
    with transaction.atomic():
        # Lock in id order so two reviewers' overlapping bulk actions cannot deadlock.
        current = dict(
            Image.objects.select_for_update().filter(pk__in=list(changes)).order_by("pk")
            .values_list("pk", "human_decision")
        )
        if client_id:
            # Read under the image's row lock: a retry racing the first request waits for it here,
            # then finds its Review instead of deciding a second time.
            earlier = _earlier_decision(client_id, changes, user)
            if earlier is not None:
                return [earlier]
        if expected is not None:
            current = {pk: old for pk, old in current.items() if old == expected.get(pk)}
        reviews = [
            Review(image_id=pk, user=user, old=old, new=changes[pk], note=notes.get(pk, "")[:NOTE_MAX],
                   client_id=client_id)
            for pk, old in current.items()
            if old != changes[pk]
        ]
        created = Review.objects.bulk_create(reviews)
        # Told even of decisions that change nothing: a second reviewer agreeing with the first is a decision.
        for listener in registry.review_listeners():
            listener(user, {pk: changes[pk] for pk in current})
        by_value = {}
        for review in reviews:
            by_value.setdefault(review.new, []).append(review.image_id)
        for new, ids in by_value.items():
            if new is None:
                Image.objects.filter(pk__in=ids).update(human_decision=None, final_decision=F("auto_decision"))
            else:
                Image.objects.filter(pk__in=ids).update(human_decision=new, final_decision=new)
    return created


def _earlier_decision(client_id, changes, user):
    """The Review already written under `client_id`, if any; a ReviewError if it was another decision."""
    earlier = Review.objects.filter(client_id=client_id).first()
    if earlier is None:
        return None
    if earlier.user_id != user.pk or {earlier.image_id: earlier.new} != changes:
        raise ReviewError(f"client_id: {client_id!r} already names another decision")
    return earlier


def set_decision(image_ids, decision, user, note="", client_id=None):
    """Give these images the human decision `decision` (keep, reject or None to clear).

    Images that already have it get no Review row. Returns the Reviews written.

    `client_id` is the browser's id for one decision on one image: sent again (a retry after a lost
    answer), the decision is not made again and the Review written the first time is returned.
    """
    decision = parse_decision(decision)
    ids = sorted({int(i) for i in image_ids})
    if client_id is not None:
        if len(ids) != 1:
            raise ReviewError("client_id: names a decision on one image, not several")
        if not client_id or len(client_id) > CLIENT_ID_MAX:
            raise ReviewError(f"client_id: expected 1 to {CLIENT_ID_MAX} characters")
    try:
        return _apply(dict.fromkeys(ids, decision), user, dict.fromkeys(ids, note), client_id=client_id)
    except IntegrityError:
        if client_id is None:
            raise
        # The unique client_id clashed: the same id sent for another image at the same moment.
        raise ReviewError(f"client_id: {client_id!r} already names another decision") from None


def set_decisions(items, user):
    """Single-image decisions [(image_id, decision, client_id)] made in the order given, in one
    transaction, as set_decision would make them one after another (the viewer sends what piled up
    while its previous request was out). One result per item: the Reviews written (none when the image
    already had that decision; the earlier Review when its client_id was already used for it), or the
    ReviewError that refused it, which leaves the other items made."""
    checked = [_checked_item(*item) for item in items]
    try:
        with transaction.atomic():
            return _apply_in_order(checked, user)
    except IntegrityError:
        # Another request used one of these client_ids at the same moment: one at a time, each alone.
        return [item if isinstance(item, ReviewError) else _decide_one(item, user) for item in checked]


def _checked_item(image_id, decision, client_id):
    try:
        if not client_id or len(client_id) > CLIENT_ID_MAX:
            raise ReviewError(f"client_id: expected 1 to {CLIENT_ID_MAX} characters")
        return int(image_id), parse_decision(decision), client_id
    except ReviewError as exc:
        return exc


def _decide_one(item, user):
    image_id, decision, client_id = item
    try:
        return set_decision([image_id], decision, user, client_id=client_id)
    except ReviewError as exc:
        return exc


def _apply_in_order(checked, user):
    ids = sorted({item[0] for item in checked if not isinstance(item, ReviewError)})
    current = dict(Image.objects.select_for_update().filter(pk__in=ids).order_by("pk")
                   .values_list("pk", "human_decision"))
    earlier = {r.client_id: r for r in Review.objects.filter(
        client_id__in=[item[2] for item in checked if not isinstance(item, ReviewError)])}
    results, reviews, decided = [], [], {}
    for item in checked:
        if isinstance(item, ReviewError):
            results.append(item)
            continue
        image_id, decision, client_id = item
        if client_id in earlier:
            same = (earlier[client_id].user_id, earlier[client_id].image_id, earlier[client_id].new)
            results.append([earlier[client_id]] if same == (user.pk, image_id, decision) else
                           ReviewError(f"client_id: {client_id!r} already names another decision"))
        elif image_id not in current:
            results.append(ReviewError(f"image: no image #{image_id}"))
        elif current[image_id] == decision:
            decided[image_id] = decision
            results.append([])
        else:
            made = Review(image_id=image_id, user=user, old=current[image_id], new=decision, client_id=client_id)
            current[image_id] = decided[image_id] = decision
            earlier[client_id] = made
            reviews.append(made)
            results.append([made])
    Review.objects.bulk_create(reviews)
    if decided:
        for listener in registry.review_listeners():
            listener(user, decided)
    by_value = {}
    for image_id in {made.image_id for made in reviews}:
        by_value.setdefault(current[image_id], []).append(image_id)
    for new, changed in by_value.items():
        final = F("auto_decision") if new is None else new
        Image.objects.filter(pk__in=changed).update(human_decision=new, final_decision=final)
    return results


def undo(review_ids, user):
    """Revert the changes recorded by these Reviews (the user's own).

    Each image goes back to the `old` value of the earliest given Review that touched it, which
    is where it stood before the whole action, but only while it still has the `new` value of the
    latest given Review: an image decided again since (by anyone) keeps that later decision.
    Returns (the Reviews that record the undo, how many images were skipped that way).
    """
    ids = sorted({int(i) for i in review_ids})
    targets, expected, notes = {}, {}, {}
    for review in Review.objects.filter(pk__in=ids, user=user).order_by("pk").only("pk", "image_id", "old", "new"):
        if review.image_id not in targets:
            targets[review.image_id] = review.old
            notes[review.image_id] = f"undo of review #{review.pk}"
        expected[review.image_id] = review.new
    written = _apply(targets, user, notes, expected=expected)
    reverted = {r.image_id for r in written}
    # An image already back at its old value needs no Review and is not "skipped".
    current = dict(Image.objects.filter(pk__in=[pk for pk in targets if pk not in reverted])
                   .values_list("pk", "human_decision"))
    skipped = sum(1 for pk, value in current.items() if value != targets[pk])
    return written, skipped


def matching_ids(params, limit):
    """Up to `limit` ids of the images matching a gallery filter, in id order."""
    return list(gallery.filter_images(params, ordered=False).order_by("pk").values_list("pk", flat=True)[:limit])


def decide_matching(tracker, params, decision, user, note=""):
    """Stage: give every image matching the filter this human decision, in id-ordered chunks.

    Keyset by id, so images that stop matching once decided (e.g. "undecided" filters) are not
    skipped or visited twice.
    """
    decision = parse_decision(decision)
    for ids in id_chunks(gallery.filter_images(params, ordered=False), CHUNK):
        tracker.check_cancelled()
        written = set_decision(ids, decision, user, note=note)
        tracker.count("processed", len(ids))
        tracker.count("changed", len(written))


def undo_run_reviews(tracker, run_id, user):
    """Stage: undo every change a bulk review run made (its Reviews carry the run's note)."""
    note = bulk_note(run_id)
    reviews = Review.objects.filter(Q(note=note) | Q(note__startswith=note + ": "), user=user)
    for ids in id_chunks(reviews, CHUNK):
        tracker.check_cancelled()
        written, skipped = undo(ids, user)
        tracker.count("processed", len(ids))
        tracker.count("changed", len(written))
        if skipped:
            tracker.count("decided_since", skipped)  # left alone: decided again after the run


def bulk_note(run_id, note=""):
    """The note on every Review a bulk run writes: how its changes are found again to undo them."""
    return f"bulk run #{run_id}: {note}" if note else f"bulk run #{run_id}"


def sync_limit():
    return settings.SCENEIMG_REVIEW_SYNC_LIMIT
