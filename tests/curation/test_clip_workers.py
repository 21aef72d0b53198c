"""A CLIP run's batches shared by two real RQ worker processes: exact counters, and a batch that fails in
one worker fails only its own images."""

import django_rq
import numpy as np
import pytest
from rq.job import Job

from curation import embeddings, launch
from curation.models import Embedding, FilterScore, Run
from curation.scoring import DecisionRule, key_for_settings, select_image_ids
from sceneimg_site import queues
from tests.factories import image_row
from tests.workers import start_workers, stop_workers, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def unit_vectors(n, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 512))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def test_two_workers_share_a_clip_run_and_a_failing_batch_fails_only_its_images(settings, worker_env, redis_conn):
    settings.SCENEIMG_CLIP_JOB_SIZE = 2
    images = [image_row(300 + i) for i in range(8)]
    ids = [im.pk for im in images]
    # Stored embeddings: the batches score without decoding (these rows have no files), and one row cut
    # short (a corrupt vector) makes its batch raise in whichever worker takes it.
    key = embeddings.current_key()
    embeddings.store(key, ids, unit_vectors(8))
    Embedding.objects.filter(image_id=ids[4]).update(vector=bytes(6))
    # SimpleWorker: each worker process loads the (random-weight) model once, not once per batch.
    workers, ready = start_workers(worker_env, django_rq.get_queue(queues.SCORE), 2, "clip-test")
    run, names = None, set()
    try:
        if ready:
            run = launch.launch_clip(launch.clip_params("all", device="cpu", indoor_margin=0.0))
            wait_for(lambda: not Run.objects.get(pk=run.pk).is_active, timeout=300)
            names = {Job.fetch(job_id, connection=redis_conn).worker_name for job_id in run.job_ids}
    finally:
        logs = stop_workers(workers)
    assert run is not None, f"the workers did not start:\n{logs}"
    run.refresh_from_db()
    assert run.status == Run.Status.DONE, f"{run.status}: {run.error}\n{logs}"
    assert run.total == 8 and run.jobs_done == run.jobs_total == 4
    assert len(names) == 2  # both workers took batches
    failed = f"batch {ids[4]}-{ids[5]}"
    assert run.counters["error"] == 2 and run.counters["failed_batches"] == 1
    assert run.counters["kept"] + run.counters["rejected"] == 6 and run.processed == run.total == 8
    assert run.notice.startswith(f"{failed} failed, 2 images not done: ValueError"), run.notice
    # The other batches stored everything; the failed one nothing, so the next run takes those images again.
    scored = set(FilterScore.objects.filter(run=run).values_list("image_id", flat=True))
    assert scored == set(ids) - {ids[4], ids[5]}
    assert sorted(select_image_ids("all", key_for_settings(DecisionRule()))) == [ids[4], ids[5]]
