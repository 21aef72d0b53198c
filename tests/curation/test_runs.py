"""Runs on RQ: a real worker process runs an enqueued import; a killed worker's run is marked failed."""
import os
import signal
import time

import pytest
from django.core.management import call_command

from crawl import jobs
from curation import runs
from curation.models import Run
from sceneimg_site import queues
from tests.fakes.image_host import ImageHost
from tests.images import encode, photo_like
from tests.workers import start_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def kill_tree(pid):
    """SIGKILL a process and all its descendants (RQ's work horse runs in its own process group)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_enqueued_import_runs_in_a_real_worker(tmp_path, worker_env, redis_conn):
    for seed in range(4):
        (tmp_path / f"{seed}.jpg").write_bytes(encode(photo_like(500, 400, seed), "JPEG"))
    (tmp_path / "copy.jpg").write_bytes((tmp_path / "0.jpg").read_bytes())
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    call_command("import_folder", str(tmp_path), "--enqueue", "--label", "queued")
    run = Run.objects.get()
    assert run.status == "queued" and run.job_ids == [f"import-{run.pk}-b0"]  # one batch of 6 files
    # The same work enqueued again is the same run, not a second job.
    call_command("import_folder", str(tmp_path), "--enqueue", "--label", "queued")
    assert Run.objects.count() == 1
    worker = start_worker(worker_env, queues.CRAWL)
    out, _ = worker.communicate(timeout=120)
    run.refresh_from_db()
    assert run.status == "done", out.decode()[-2000:]
    assert {k: run.counters.get(k) for k in ("stored", "duplicate", "invalid")} == \
        {"stored": 4, "duplicate": 1, "invalid": 1}
    assert run.heartbeat_at is not None and run.finished_at is not None


def test_job_that_raises_fails_its_run(worker_env, redis_conn):
    run = runs.launch("import", jobs.import_urls_job, {"file": "/does/not/exist"}, queue=queues.CRAWL)
    worker = start_worker(worker_env, queues.CRAWL)
    worker.communicate(timeout=120)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "does not exist" in run.error


def test_a_job_that_cannot_start_fails_its_run(worker_env, redis_conn):
    # The worker cannot find the job's function (renamed by a deploy in between): no stage runs, so
    # only the queue's failure callback can tell the run.
    run = runs.launch("import", "tests.curation.slow_jobs.renamed_job", {"file": "/x"}, queue=queues.CRAWL)
    worker = start_worker(worker_env, queues.CRAWL)
    out, _ = worker.communicate(timeout=120)
    run.refresh_from_db()
    assert run.status == "failed", out.decode()[-2000:]
    assert "renamed_job" in run.error


def test_a_job_over_its_queue_timeout_fails_its_run(worker_env, redis_conn, settings):
    from rq.job import Job

    from tests.curation import slow_jobs

    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queues.DEFAULT: {**settings.RQ_QUEUES[queues.DEFAULT],
                                                                 "DEFAULT_TIMEOUT": 2}}
    run = runs.launch("dedup", slow_jobs.sleep_job, {"seconds": 60}, queue=queues.DEFAULT)
    assert Job.fetch(run.job_ids[0], connection=redis_conn).timeout == 2  # the queue's timeout reached the job
    started = time.monotonic()
    worker = start_worker(worker_env, queues.DEFAULT)
    out, _ = worker.communicate(timeout=50)
    run.refresh_from_db()
    assert run.status == "failed", out.decode()[-2000:]
    assert "JobTimeoutException" in run.error and "(2 seconds)" in run.error
    assert time.monotonic() - started < 45  # stopped at the timeout, not after the stage's full minute


def test_killed_worker_leaves_a_run_that_is_detected_and_failed(tmp_path, worker_env, redis_conn, settings):
    with ImageHost() as host:
        listing = tmp_path / "urls.txt"
        listing.write_text("\n".join(host.url(f"/slow/{i}.jpg?s=0.3") for i in range(60)))
        worker_env["SCENEIMG_FETCH_ALLOW_PRIVATE"] = "127.0.0.1"
        run = runs.launch("import", jobs.import_urls_job, {"file": str(listing), "workers": 1},
                          queue=queues.CRAWL)
        worker = start_worker(worker_env, queues.CRAWL, burst=False)
        try:
            # Rows (and counts) are written a batch at a time: the downloads say the job is under way.
            assert wait_for(lambda: sum(n for p, n in host.hits.items() if p.startswith("/slow/")) >= 2)
            kill_tree(worker.pid)  # the worker and its work horse, as the OOM killer would
            worker.wait(timeout=10)
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
    run.refresh_from_db()
    assert run.status == "running"
    assert runs.reap_stale_runs(stale_seconds=60) == 0  # its heartbeat is still fresh
    time.sleep(2.5)
    assert runs.reap_stale_runs(stale_seconds=2) == 1
    run.refresh_from_db()
    assert run.status == "failed" and "worker died" in run.error


def test_cancel_drops_queued_jobs_and_stops_running_stage(redis_conn):
    run = runs.launch("import", jobs.import_urls_job, {"file": "/x"}, queue=queues.CRAWL)
    assert runs.cancel(run)
    run.refresh_from_db()
    assert run.status == "cancelled"
    from rq.job import Job

    assert Job.fetch(run.job_ids[0], connection=redis_conn).get_status() == "canceled"
    # A stage that was already running stops at its next check, and the run stays cancelled.
    seen = []

    def stage(tracker):
        for i in range(100):
            tracker._last_cancel_check = 0
            tracker.check_cancelled()
            seen.append(i)
            if i == 3:
                Run.objects.filter(pk=tracker.run.pk).update(status="cancelled")

    other = runs.create_run("import", {"n": 1})
    Run.objects.filter(pk=other.pk).update(jobs_total=1)
    assert runs.run_job(other.pk, stage) == "cancelled"
    assert seen == [0, 1, 2, 3]
    other.refresh_from_db()
    assert other.status == "cancelled"


def test_batches_share_one_run_which_ends_when_the_last_one_does(redis_conn):
    run = runs.create_run("import", {"b": 1})
    Run.objects.filter(pk=run.pk).update(jobs_total=3)
    for n in range(3):
        runs.run_job(run.pk, lambda t, n=n: t.count("stored", n + 1))
        run.refresh_from_db()
        assert run.status == ("done" if n == 2 else "running")
    assert run.counters["stored"] == 6


def test_a_batch_finishing_while_the_others_are_enqueued_does_not_end_the_run(redis_conn, monkeypatch):
    """A worker may finish batch 1 before batch 2 is even enqueued: the run must wait for all three."""
    import django_rq

    real_enqueue = django_rq.get_queue(queues.DEFAULT).__class__.enqueue
    seen = []

    def enqueue_and_run_at_once(self, func, *, args, kwargs, **options):
        job = real_enqueue(self, func, args=args, kwargs=kwargs, **options)
        seen.append(Run.objects.get(pk=args[0]).jobs_total)
        runs.run_job(args[0], lambda t: t.count("processed"))  # as if a worker took it this instant
        return job

    monkeypatch.setattr(django_rq.queues.DjangoRQ, "enqueue", enqueue_and_run_at_once)
    run = runs.launch("dedup", jobs.import_folder_job, {"p": 1}, queue=queues.DEFAULT,
                      batches=[("a", {}), ("b", {}), ("c", {})])
    run.refresh_from_db()
    assert seen == [3, 3, 3]
    assert (run.status, run.jobs_done, run.counters["processed"]) == ("done", 3, 3)
