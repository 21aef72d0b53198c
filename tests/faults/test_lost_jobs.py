"""Runs whose RQ jobs are gone (Redis flushed, restarted without persistence, a job deleted from the
dashboard) do not stay queued for ever, and launching the same work again really enqueues it."""
from datetime import timedelta

import django_rq
import pytest
import redis
from django.test import TestCase
from django.utils import timezone
from rq.job import Job

from curation import runs
from curation.models import Run
from sceneimg_site import queues

pytestmark = pytest.mark.django_db


def noop_job(run_id, **kwargs):
    return None


def launch(params=None):
    # Jobs reach Redis when the launch's transaction commits; the test's own transaction never does.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return runs.launch(Run.Kind.CLIP, noop_job, params or {"input": "all"}, queue=queues.DEFAULT)


def age(run, seconds):
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


def test_relaunch_after_the_jobs_were_lost_enqueues_again(redis_conn):
    first = launch()
    age(first, 600)
    assert launch().pk == first.pk  # its job is waiting: the same work is not enqueued twice
    redis_conn.flushdb()
    second = launch()
    assert second.pk != first.pk
    assert Job.fetch(second.job_ids[0], connection=redis_conn).get_status() == "queued"
    first.refresh_from_db()
    assert first.status == "failed" and "lost" in first.error


def test_relaunch_while_the_first_is_being_enqueued_returns_it(redis_conn):
    """A queued run with no job yet, created a moment ago, is another request half-way through launching."""
    first = runs.create_run(Run.Kind.CLIP, {"input": "all"})
    assert launch().pk == first.pk


def test_relaunch_after_a_cancelled_job_enqueues_again(redis_conn):
    first = launch()
    Job.fetch(first.job_ids[0], connection=redis_conn).delete()
    assert launch().pk == first.pk  # a moment after its launch: maybe still being enqueued
    age(first, 600)
    assert launch().pk != first.pk


def test_reaper_fails_queued_runs_whose_jobs_are_gone(redis_conn):
    lost, waiting, fresh = launch({"n": 1}), launch({"n": 2}), runs.create_run(Run.Kind.CLIP, {"n": 3})
    Job.fetch(lost.job_ids[0], connection=redis_conn).delete()
    for run in (lost, waiting, fresh):
        age(run, 30)
    assert runs.reap_stale_runs(stale_seconds=60) == 0  # too young to judge: could still be enqueuing
    for run in (lost, waiting):
        age(run, 300)
    assert runs.reap_stale_runs(stale_seconds=60) == 1
    lost.refresh_from_db(), waiting.refresh_from_db(), fresh.refresh_from_db()
    assert lost.status == "failed" and "lost" in lost.error and lost.finished_at
    assert waiting.status == "queued" and fresh.status == "queued"


def test_reaper_fails_an_old_queued_run_that_never_got_a_job(redis_conn):
    run = runs.create_run(Run.Kind.CLIP, {"n": 4})
    age(run, 300)
    assert runs.reap_stale_runs(stale_seconds=60) == 1
    run.refresh_from_db()
    assert run.status == "failed"


def test_reaper_leaves_queued_runs_alone_while_redis_is_unreachable(redis_conn, monkeypatch):
    run = launch()
    age(run, 300)
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(django_rq, "get_connection", lambda *a, **k: down)
    assert runs.reap_stale_runs(stale_seconds=60) == 0
    run.refresh_from_db()
    assert run.status == "queued"


def test_reaper_leaves_a_running_run_alone_while_its_next_jobs_wait_in_the_queue(redis_conn):
    """A run of several jobs beats only while one of them runs: with its next batches queued behind
    other work it is waiting, not dead. Once none is left waiting, a stale heartbeat fails it."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        run = runs.launch(Run.Kind.EXPORT, noop_job, {"n": 5}, queue=queues.EXPORT,
                          batches=[("part-0", {}), ("part-1", {})])
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING,
                                         heartbeat_at=timezone.now() - timedelta(seconds=600))
    assert runs.reap_stale_runs(stale_seconds=60) == 0
    run.refresh_from_db()
    assert run.status == "running"
    for job_id in run.job_ids:
        Job.fetch(job_id, connection=redis_conn).delete()
    assert runs.reap_stale_runs(stale_seconds=60) == 1
    run.refresh_from_db()
    assert run.status == "failed" and "worker died" in run.error
