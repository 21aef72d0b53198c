"""filter_clip --enqueue and find_duplicates --enqueue: batches with deterministic job ids, run by RQ."""
import gc
import threading

import django_rq
import pytest
from django.core.management import CommandError, call_command
from rq import SimpleWorker

from curation.models import FilterScore, Image, Run
from sceneimg_site import queues
from tests.factories import stored_image

pytestmark = pytest.mark.django_db(transaction=True)


def drain(queue_name):
    """Run every queued job in this process (SimpleWorker: no fork, so the loaded model is reused)."""
    q = django_rq.get_queue(queue_name)
    SimpleWorker([q], connection=q.connection).work(burst=True)
    # Let the runs' heartbeat threads finish, so their database connections go before teardown.
    for thread in threading.enumerate():
        if thread.name.startswith("heartbeat-"):
            thread.join(timeout=5)
    gc.collect()


def test_enqueued_clip_run_is_split_into_batches_that_workers_share(settings, redis_conn):
    settings.SCENEIMG_CLIP_JOB_SIZE = 2
    images = [stored_image(seed, width=320, height=240) for seed in range(5)]
    ids = [im.pk for im in images]
    call_command("filter_clip", "--input", "all", "--enqueue", "--indoor-margin", "-2", "--device", "cpu",
                 "--batch-size", "2")
    run = Run.objects.get(kind="clip")
    assert run.status == "queued" and run.total == 5 and run.jobs_total == 3
    assert run.job_ids == [f"clip-{run.pk}-{ids[0]}-{ids[1]}", f"clip-{run.pk}-{ids[2]}-{ids[3]}",
                           f"clip-{run.pk}-{ids[4]}-{ids[4]}"]
    # The same work asked for again is the same run, with no new jobs.
    call_command("filter_clip", "--input", "all", "--enqueue", "--indoor-margin", "-2", "--device", "cpu",
                 "--batch-size", "2")
    assert Run.objects.filter(kind="clip").count() == 1
    assert len(django_rq.get_queue(queues.SCORE).job_ids) == 3

    drain(queues.SCORE)
    run.refresh_from_db()
    assert run.status == "done", run.error
    assert run.jobs_done == 3 and run.counters == {"kept": 5}
    assert sorted(FilterScore.objects.values_list("image_id", flat=True)) == ids
    assert set(FilterScore.objects.values_list("run_id", flat=True)) == {run.pk}
    assert set(Image.objects.values_list("auto_decision", flat=True)) == {"keep"}


def test_enqueue_refuses_local_outputs(tmp_path):
    stored_image(1, width=320, height=240)
    with pytest.raises(CommandError, match="without --enqueue"):
        call_command("filter_clip", "--enqueue", "--log-csv", str(tmp_path / "log.csv"))


def test_job_without_weights_fails_its_run_with_the_reason(settings, tmp_path, redis_conn):
    stored_image(1, width=320, height=240)
    settings.SCENEIMG_CLIP_PRETRAINED = "laion2b_s34b_b79k"
    settings.SCENEIMG_MODEL_DIR = str(tmp_path / "no-models")
    call_command("filter_clip", "--enqueue")  # this machine lacks them too: a warning, the worker decides
    drain(queues.SCORE)
    run = Run.objects.get(kind="clip")
    assert run.status == "failed"
    assert "SCENEIMG_CLIP_PRETRAINED" in run.error and "fetch_models" in run.error
    assert not FilterScore.objects.exists()


def test_enqueued_find_duplicates(redis_conn):
    a = stored_image(1, width=400, height=300, dhash=7)
    b = stored_image(2, width=200, height=150, dhash=7 ^ 0b101)
    call_command("find_duplicates", "--enqueue", "--threshold", "3")
    run = Run.objects.get(kind="dedup")
    assert run.job_ids == [f"dedup-{run.pk}-all"]
    drain(queues.DEFAULT)
    run.refresh_from_db()
    assert run.status == "done", run.error
    assert run.counters["groups"] == 1 and run.counters["duplicates"] == 1
    b.refresh_from_db()
    assert b.dup_group_id == a.pk and b.auto_reason == f"near-duplicate of #{a.pk}"
