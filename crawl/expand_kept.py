"""Expand from kept: a reverse-image expansion seeded with images people or the pipeline kept.

Seeds are the newest kept images not used as a seed before, so running it again (from cron, or on
its own schedule) expands new ones each time. "human" is what a person kept; "pipeline" what CLIP
and the VLM kept and nobody overturned; "both" every image whose final decision is keep.

The schedule needs no rq-scheduler: the job launches one expansion and puts itself back on the crawl
queue with rq's `enqueue_in` (a worker started with `--with-scheduler` moves it to the queue when
due; scripts/run.sh starts the crawl worker so). Redis holds the id of the next scheduled job; a
job whose id is no longer there was replaced or stopped and does not come back.
"""
import logging
import uuid
from datetime import timedelta

import django_rq
from django.db.models import Q

from crawl import launch
from crawl.models import Source
from curation.models import Decision, Image
from curation.registry import LaunchError
from sceneimg_site import queues

log = logging.getLogger(__name__)

KEPT_CHOICES = {
    "human": "kept by a person",
    "pipeline": "kept by the pipeline (CLIP and the VLM), not overturned by a person",
    "both": "final decision keep, whoever made it",
}
SCHEDULE_KEY = "sceneimg:expand-kept:next-job"


def kept_images(kept):
    if kept not in KEPT_CHOICES:
        raise LaunchError(f"kept: expected one of {', '.join(KEPT_CHOICES)}, got {kept!r}")
    return Image.objects.filter({
        "human": Q(human_decision=Decision.KEEP),
        "pipeline": Q(auto_decision=Decision.KEEP, human_decision__isnull=True),
        "both": Q(final_decision=Decision.KEEP),
    }[kept])


def seed_ids(kept, count):
    """The newest `count` kept images no expansion has used as a seed yet."""
    used = Source.objects.filter(seed_image__isnull=False).values("seed_image_id")
    return list(kept_images(kept).exclude(pk__in=used).order_by("-pk").values_list("pk", flat=True)[:count])


def expand_kept_params(*, kept="both", seeds=20, limit_per_seed=150, until_kept=None, max_fetches=None, label="",
                       **similar_options):
    """Which kept images to seed with and how to expand them; the seeds themselves are chosen at launch."""
    return {"kept": kept, "seeds": seeds, "limit_per_seed": limit_per_seed, "until_kept": until_kept,
            "max_fetches": max_fetches, "label": label, **similar_options}


def launch_expand_kept(params, user=None):
    """Launch a reverse-image expansion of the kept images chosen now (a `similar` run)."""
    p = dict(params)
    kept, count = p.pop("kept"), p.pop("seeds")
    ids = seed_ids(kept, count)
    if not ids:
        raise LaunchError(f"No images {KEPT_CHOICES.get(kept, kept)} are left to seed with: each kept image "
                          f"is used as a seed once.")
    p["label"] = p.get("label") or f"expand {len(ids)} {kept}-kept"
    return launch.launch_similar(launch.similar_params([{"image_id": i} for i in ids], **p), user)


# --- the schedule ----------------------------------------------------------------------------------

def start_schedule(params, every_hours, *, first_in_hours=0):
    """Run `launch_expand_kept(params)` now (or after `first_in_hours`), then every `every_hours`.
    Replaces a schedule already running; returns the next job's id."""
    if every_hours <= 0:
        raise LaunchError("every: the hours between expansions must be above 0")
    stop_schedule()
    return _schedule(params, every_hours, timedelta(hours=first_in_hours))


def stop_schedule():
    """Drop the next scheduled expansion; True when there was one."""
    conn = django_rq.get_connection(queues.CRAWL)
    job_id = conn.get(SCHEDULE_KEY)
    conn.delete(SCHEDULE_KEY)
    if not job_id:
        return False
    from rq.job import Job

    try:
        Job.fetch(job_id.decode(), connection=conn).cancel()
    except Exception:  # already run or expired: nothing left to cancel
        pass
    return True


def scheduled_job_id():
    job_id = django_rq.get_connection(queues.CRAWL).get(SCHEDULE_KEY)
    return job_id.decode() if job_id else None


def _schedule(params, every_hours, delay):
    # The id is recorded before the job exists, so a job that comes due at once still finds itself there.
    queue = django_rq.get_queue(queues.CRAWL)
    job_id = f"expand-kept-{uuid.uuid4().hex}"
    queue.connection.set(SCHEDULE_KEY, job_id)
    queue.enqueue_in(delay, expand_kept_scheduled_job, params, every_hours, job_id=job_id, result_ttl=86400,
                     failure_ttl=7 * 86400)
    return job_id


def expand_kept_scheduled_job(params, every_hours):
    """One scheduled expansion, then the next one in `every_hours`, unless the schedule was stopped or
    replaced meanwhile. A launch that is refused (nothing new kept) still keeps the schedule."""
    from rq import get_current_job

    current = get_current_job()
    if current is not None and scheduled_job_id() != current.id:
        return "schedule stopped or replaced"
    try:
        run = launch_expand_kept(params)
        outcome = f"run #{run.pk}"
    except LaunchError as exc:
        outcome = f"nothing launched: {exc}"
        log.info("scheduled expand-from-kept: %s", outcome)
    _schedule(params, every_hours, timedelta(hours=every_hours))
    return outcome
