"""Stages that run themselves: a run launched with the pipeline option starts the next stage when it
ends, as its child run. crawl and vlm register what follows which kind of run
(`registry.register_followup`); curation registers CLIP after crawls and imports."""
import logging

from curation import registry
from curation.models import Run

log = logging.getLogger(__name__)


def start_next(run_id):
    """Launch what follows a finished pipeline run. A stage that cannot start (no API key, nothing left
    to judge) is said on the run as a notice, not an error: the run itself did its work."""
    run = Run.objects.select_related("created_by").get(pk=run_id)
    if run.status != Run.Status.DONE or not in_pipeline(run):
        return []
    started, notices = [], []
    for follow in registry.followups(run.kind):
        try:
            started.append(follow(run))
        except registry.LaunchError as exc:
            notices.append(f"pipeline: {exc}")
        except Exception:  # the run is done whatever happens next; say so rather than fail it
            log.exception("pipeline stage after run #%s could not start", run.pk)
            notices.append("pipeline: the next stage could not start (see the worker log)")
    if notices:
        Run.objects.filter(pk=run.pk).update(notice="; ".join(notices)[:500])
    if not started:
        _ended(run)
    return started


def in_pipeline(run):
    """A run launched with the pipeline option, or a stage a pipeline started (its child)."""
    return bool(run.params.get("pipeline")) or run.parent_id is not None


def _ended(run):
    for hook in registry.pipeline_ends():
        try:
            hook(run)
        except Exception:  # the run is done; a hook that fails must not undo that
            log.exception("pipeline end hook after run #%s failed", run.pk)
