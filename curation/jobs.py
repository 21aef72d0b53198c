"""Thin RQ jobs and launchers for scoring (CLIP, detector) and near-duplicate grouping."""
from django.conf import settings

from curation import runs
from curation.models import Run
from sceneimg_site import queues


def clip_batch_job(run_id, image_ids, rule=None, device=None, batch_size=None):
    """One batch of a CLIP run; several workers share a run's batches."""
    from curation.scoring import DecisionRule, score_images

    return runs.run_job(run_id, lambda t: score_images(
        t, image_ids, rule=DecisionRule(**(rule or {})), device=device, batch_size=batch_size, set_total=False))


def find_duplicates_job(run_id, threshold=None):
    from curation.neardup import find_duplicates

    return runs.run_job(run_id, lambda t: find_duplicates(t, threshold))


def assign_near_duplicates_job(image_ids, threshold=None):
    """For ingest paths that prefer to group new images in the background (no Run: it is a follow-up)."""
    from curation.neardup import assign_near_duplicates

    return assign_near_duplicates(image_ids, threshold)


def clip_batches(image_ids, rule, *, device=None, batch_size=None, job_size=None):
    """(key, kwargs) per job. Keys are the id range, so the same work always gets the same job ids."""
    job_size = job_size or settings.SCENEIMG_CLIP_JOB_SIZE
    ids = sorted(image_ids)
    out = []
    for start in range(0, len(ids), job_size):
        chunk = ids[start:start + job_size]
        out.append((f"{chunk[0]}-{chunk[-1]}", {
            "image_ids": chunk, "rule": rule.as_params(), "device": device, "batch_size": batch_size,
        }))
    return out


def clip_params(input_spec, rule, *, limit=None, device=None, batch_size=None):
    return {"input": str(input_spec), "limit": limit, "device": device, "batch_size": batch_size,
            **rule.as_params()}


def launch_clip(input_spec, rule, image_ids, *, limit=None, device=None, batch_size=None, user=None, label=""):
    """Queue a CLIP run over `image_ids` split into batches (or return the identical active run)."""
    run = runs.launch(
        Run.Kind.CLIP, clip_batch_job, clip_params(input_spec, rule, limit=limit, device=device,
                                                   batch_size=batch_size),
        queue=queues.SCORE, user=user, label=label,
        batches=clip_batches(image_ids, rule, device=device, batch_size=batch_size),
    )
    if run.total is None:
        Run.objects.filter(pk=run.pk, total__isnull=True).update(total=len(image_ids))
    return run


def launch_dedup(threshold=None, *, user=None, label=""):
    k = settings.SCENEIMG_NEARDUP_THRESHOLD if threshold is None else int(threshold)
    return runs.launch(Run.Kind.DEDUP, find_duplicates_job, {"threshold": k}, queue=queues.DEFAULT,
                       user=user, label=label)
