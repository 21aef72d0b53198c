"""Thin RQ jobs for curation's stages: plain parameters in, the stage function does the work.

Launching them is curation/launch.py's job; the one job here that enqueues others is a large export's
first job, which enqueues its parts.
"""
import logging

from django.contrib.auth import get_user_model
from django.db.models import Case, F, Value, When
from django.db.models.functions import Concat, Substr

from curation import embeddings, export, export_parts, learned, rescore, review, runs, snapshots, vector_index
from curation.clip import ModelConfigError, ModelWeightsMissing
from curation.embed import embed_images
from curation.models import Run
from curation.neardup import find_duplicates
from curation.scoring import DecisionRule, score_images
from sceneimg_site import queues

log = logging.getLogger(__name__)


def clip_batch_job(run_id, image_ids, rule=None, device=None, batch_size=None):
    """One batch of a CLIP run; several workers share a run's batches."""
    rule = DecisionRule(**(rule or {}))
    outcome = runs.run_job(run_id, _batch_stage(run_id, image_ids, ("kept", "rejected", "error"), lambda t: (
        score_images(t, image_ids, rule=rule, device=device, batch_size=batch_size, set_total=False))))
    _index_when_done(run_id)
    return outcome


def _batch_stage(run_id, image_ids, outcomes, work):
    """One batch of a run that workers share: an exception fails this batch's images only. Those it had
    not finished count as errors, the run says which batch failed and why, and its other batches go on
    (a later run with --input all takes the failed images again: nothing was stored for them). Missing
    or misconfigured model weights fail the run: every batch would fail the same way."""
    def stage(tracker):
        try:
            return work(tracker)
        except (runs.Cancelled, ModelWeightsMissing, ModelConfigError):
            raise
        except Exception as exc:
            log.exception("batch %s-%s of run #%s failed", image_ids[0], image_ids[-1], run_id)
            lost = len(image_ids) - sum(tracker.counts.get(k, 0) for k in outcomes)
            tracker.count("error", lost)
            tracker.count("failed_batches")
            _add_notice(run_id, f"batch {image_ids[0]}-{image_ids[-1]} failed, {lost} images not done: "
                                    f"{type(exc).__name__}: {exc}")
    return stage


def _add_notice(run_id, text):
    """Append to the run's notice in one statement: batches failing at once in two workers both show."""
    notice = Case(When(notice="", then=Value(text)), default=Concat(F("notice"), Value("; " + text)))
    Run.objects.filter(pk=run_id).update(notice=Substr(notice, 1, Run._meta.get_field("notice").max_length))


def find_duplicates_job(run_id, threshold=None):
    return runs.run_job(run_id, lambda t: find_duplicates(t, threshold))


def export_job(run_id, filter="", format="zip", out=None, snapshot=None, name="", shard_size=None):
    """Freeze `filter` as a new snapshot and write it, or write the existing `snapshot` again. A large
    export is written by part jobs that any export worker takes (curation/export_parts.py)."""
    def write(tracker, snap, path, fmt, shard_size=None):
        parts = export_parts.plan(tracker, snap, path, fmt)
        if not parts:
            return export.export_snapshot(tracker, snap, path, fmt, shard_size=shard_size)
        common = {"snapshot": snap.pk, "format": fmt, "out": out, "shard_size": shard_size}
        runs.enqueue_batches(tracker.run, export_part_job, [(key, {**common, **kw}) for key, kw in parts],
                             queue=queues.EXPORT)

    path = out or export.output_path(run_id, format)
    if snapshot is not None:
        return runs.run_job(run_id, lambda t: write(t, snapshots.get(snapshot), path, format, shard_size=shard_size))
    return runs.run_job(run_id, lambda t: export.export(t, filter, path, format, name=name, shard_size=shard_size,
                                                        write=write))


def export_part_job(run_id, snapshot, format, out, shard_size, part, parts, first_id, last_id):
    """One slice of a large export's rows; the last part done writes the export."""
    if export_parts.is_done(run_id, part):
        return "done"  # a retried job: the first try saved the part, counted its images and its job
    path = out or export.output_path(run_id, format)
    piece = export_parts.Part(part, parts, first_id, last_id)
    try:
        return runs.run_job(run_id, lambda t: export_parts.write_part(
            t, snapshots.get(snapshot), path, format, shard_size, piece))
    finally:
        export_parts.remove_if_ended(run_id, parts)


def decide_matching_job(run_id, querystring, decision, user_id, note=""):
    user = get_user_model().objects.get(pk=user_id)
    return runs.run_job(run_id, lambda tracker: review.decide_matching(
        tracker, querystring, decision, user, note=review.bulk_note(run_id, note)))


def undo_run_job(run_id, action, target_run, user_id):
    user = get_user_model().objects.get(pk=user_id)
    return runs.run_job(run_id, lambda tracker: review.undo_run_reviews(tracker, target_run, user))


def _index_when_done(run_id):
    """The job that finishes a CLIP or embed run queues the index job, so search sees the new embeddings."""
    if Run.objects.filter(pk=run_id, status=Run.Status.DONE).exists():
        runs.launch(vector_index.KIND, index_job, {"model_key": embeddings.current_key(), "rebuild": False},
                    queue=queues.DEFAULT, label=f"index after run #{run_id}")


def embed_batch_job(run_id, image_ids, device=None, batch_size=None):
    """One batch of an embed run."""
    outcome = runs.run_job(run_id, _batch_stage(run_id, image_ids, ("embedded", "skipped", "error"), lambda t: (
        embed_images(t, image_ids, device=device, batch_size=batch_size, set_total=False))))
    _index_when_done(run_id)
    return outcome


def index_job(run_id, model_key=None, rebuild=False):
    return runs.run_job(run_id, lambda t: vector_index.sync(model_key, tracker=t, rebuild=rebuild))


def rescore_job(run_id, prompts=None, device=None, **rule):
    """A CLIP run from stored embeddings (its params also say `rescore: True`, which is all it is)."""
    rule.pop("rescore", None)
    return runs.run_job(run_id, lambda t: rescore.rescore(t, rule=DecisionRule(**rule), prompt_version=prompts,
                                                          device=device))


def train_job(run_id, model_key=None, last_review=None):
    """Train a learned-scorer version and apply it. Too few decisions is an outcome, not a failure."""
    def stage(tracker):
        try:
            learned.train(tracker, model_key=model_key, run=tracker.run)
        except learned.NotEnoughDecisions as exc:
            tracker.count("not_enough", 1)
            Run.objects.filter(pk=run_id).update(result=str(exc)[:500])

    return runs.run_job(run_id, stage)
