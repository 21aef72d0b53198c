"""Thin RQ jobs for bulk review: ids and plain values in, the stage in curation.review does the work."""
from django.contrib.auth import get_user_model

from curation import review, runs


def decide_matching_job(run_id, querystring, decision, user_id, note=""):
    user = get_user_model().objects.get(pk=user_id)
    return runs.run_job(
        run_id,
        lambda tracker: review.decide_matching(
            tracker, querystring, decision, user, note=review.bulk_note(run_id, note)
        ),
    )


def undo_run_job(run_id, action, target_run, user_id):
    user = get_user_model().objects.get(pk=user_id)
    return runs.run_job(run_id, lambda tracker: review.undo_run_reviews(tracker, target_run, user))
