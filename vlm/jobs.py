"""Thin RQ jobs: ids in, the stage function, the outcome on the Run."""
from curation import runs
from vlm.judge import judge_images


def filter_vlm_job(run_id, **kwargs):
    return runs.run_job(run_id, lambda tracker: judge_images(tracker, **kwargs))
