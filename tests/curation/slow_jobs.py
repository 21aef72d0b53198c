"""A job for the worker tests: a stage that outlasts its queue's timeout (importable by a worker process)."""
import time

from curation import runs


def sleep_job(run_id, seconds=60):
    runs.run_job(run_id, lambda tracker: time.sleep(seconds))
