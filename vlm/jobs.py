"""Thin RQ jobs: ids in, the stage function, the outcome on the Run.

A VLM run is split into batches that any number of workers share. A batch that raises (a database
write refused, a bug) fails only its own images: they are counted as errors and the run records the
batch and why, instead of the whole run failing while other workers are still judging theirs.
"""
import logging

from curation import runs
from vlm.judge import batch_failed, judge_images

log = logging.getLogger(__name__)


def filter_vlm_job(run_id, **kwargs):
    return runs.run_job(run_id, lambda tracker: _judge_batch(tracker, kwargs))


def _judge_batch(tracker, kwargs):
    try:
        return judge_images(tracker, **kwargs)
    except runs.Cancelled:
        raise
    except Exception as exc:
        log.exception("VLM batch %s of run %s failed", kwargs.get("batch_key"), tracker.run and tracker.run.pk)
        return batch_failed(tracker, exc, **kwargs)
