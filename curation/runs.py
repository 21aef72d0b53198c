"""Runs: launching a stage, tracking it from the worker, and noticing when a worker died.

Postgres is the truth about a run; Redis only carries the jobs. A stage function never sees RQ:
it gets a Tracker, which counts outcomes, reports progress and says when to stop.
"""
import hashlib
import json
import logging
import threading
import time
import traceback
from contextlib import contextmanager
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Callback
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from curation import pipeline, registry
from curation.models import Run

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a stage when its run was cancelled."""


class Tracker:
    """What a stage function reports to. Works with or without a Run (tests, dry runs)."""

    FLUSH_SECONDS = 0.5

    def __init__(self, run=None, progress=None):
        self.run = run
        self.progress = progress  # e.g. a tqdm bar
        self.counts = {}
        self._pending = {}
        self._last_flush = 0.0
        self._last_cancel_check = 0.0
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def count(self, key, n=1):
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n
            self._pending[key] = self._pending.get(key, 0) + n
        if self.progress is not None and not key.startswith("_"):
            self.progress.update(n)
        if time.monotonic() - self._last_flush > self.FLUSH_SECONDS:
            self.flush()

    def set_total(self, total):
        if self.progress is not None:
            self.progress.total = total
            self.progress.refresh()
        if self.run is not None:
            Run.objects.filter(pk=self.run.pk).update(total=total)

    def add_total(self, n):
        if self.progress is not None:
            self.progress.total = (self.progress.total or 0) + n
            self.progress.refresh()
        if self.run is not None:
            Run.objects.filter(pk=self.run.pk).update(total=Coalesce("total", 0) + n)

    def flush(self):
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        if self.run is not None and pending:
            add_counters(self.run.pk, pending)

    def check_cancelled(self, *, fresh=False):
        """Raise Cancelled if someone cancelled the run. Reads the database at most once a second unless
        `fresh` (before each download, where one query is nothing next to the transfer); once one thread
        has seen the cancel, every thread of this stage sees it at its next check."""
        if self._cancelled.is_set():
            raise Cancelled()
        if self.run is None or (not fresh and time.monotonic() - self._last_cancel_check < 1.0):
            return
        self._last_cancel_check = time.monotonic()
        status = Run.objects.filter(pk=self.run.pk).values_list("status", flat=True).first()
        if status == Run.Status.CANCELLED:
            self._cancelled.set()
            raise Cancelled()

    def summary(self, keys=("stored", "duplicate", "invalid", "error")):
        return ", ".join(f"{k} {self.counts.get(k, 0)}" for k in keys)


def add_counters(run_id, deltas):
    with transaction.atomic():
        run = Run.objects.select_for_update().only("counters").get(pk=run_id)
        for key, n in deltas.items():
            run.counters[key] = run.counters.get(key, 0) + n
        Run.objects.filter(pk=run_id).update(counters=run.counters, heartbeat_at=timezone.now())


def work_key_for(kind, params):
    blob = json.dumps([kind, params], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()


def create_run(kind, params=None, *, label="", user=None, total=None, parent=None):
    params = params or {}
    return Run.objects.create(
        kind=kind, params=params, label=label, created_by=user, total=total, parent=parent,
        work_key=work_key_for(kind, params),
    )


# Time a launch takes between creating its Run and enqueuing the first job, with room to spare.
ENQUEUE_GRACE_SECONDS = 30


LIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED)
LOST_JOBS = "its jobs were lost from the queue (Redis flushed or restarted, or the jobs deleted) before it started"


def jobs_lost(run, grace_seconds):
    """True when a queued run can no longer start: none of its RQ jobs is waiting or running.

    A run younger than `grace_seconds` may be half-way through being enqueued (jobs go to Redis when the
    transaction commits), so it is not judged. Raises redis.RedisError when Redis cannot be asked.
    """
    if run.status != Run.Status.QUEUED or run.created_at > timezone.now() - timedelta(seconds=grace_seconds):
        return False
    if not run.job_ids:
        return True
    jobs = Job.fetch_many(list(run.job_ids), connection=django_rq.get_connection())
    return not any(job is not None and job.get_status(refresh=False) in LIVE_JOB_STATUSES for job in jobs)


WAITING_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED)


def jobs_waiting(run):
    """True when some of a running run's jobs are still in the queue: nothing beats for a run between its
    jobs (a batch run whose next jobs wait behind other work), and that is not a dead worker. False when
    Redis cannot be asked: the heartbeat decides, as it did before jobs were looked at."""
    if not run.job_ids:
        return False
    try:
        jobs = Job.fetch_many(list(run.job_ids), connection=django_rq.get_connection())
        return any(job is not None and job.get_status(refresh=False) in WAITING_JOB_STATUSES for job in jobs)
    except RedisError:
        log.warning("could not check run #%s's jobs: Redis unreachable", run.pk, exc_info=True)
        return False


def active_duplicate(kind, params):
    """The queued or running run doing exactly this work, if any. A queued one whose jobs are gone is
    failed on the way: returning it would enqueue nothing, and the work would never be done."""
    for run in Run.objects.filter(kind=kind, work_key=work_key_for(kind, params), status__in=Run.ACTIVE):
        if jobs_lost(run, grace_seconds=ENQUEUE_GRACE_SECONDS):
            mark_failed(run.pk, LOST_JOBS)
            continue
        return run
    return None


def launch(kind, job_func, params, *, queue, label="", user=None, batches=None, parent=None):
    """Create a Run and enqueue its jobs. The same work already queued or running is not enqueued again:
    that run is returned instead (unless its jobs were lost: then it fails and the work is launched anew).

    `batches` is a list of (key, kwargs) pairs, one job each; default one job with the params.
    """
    existing = active_duplicate(kind, params)
    if existing is not None:
        return existing
    run = create_run(kind, params, label=label, user=user, parent=parent)
    enqueue_batches(run, job_func, batches if batches is not None else [("all", params)], queue=queue)
    return run


def job_id_for(run, key):
    return f"{run.kind}-{run.pk}-{key}"


def enqueue_batches(run, job_func, batches, *, queue):
    q = django_rq.get_queue(queue)
    todo = []
    for key, kwargs in batches:
        job_id = job_id_for(run, key)
        try:
            job = Job.fetch(job_id, connection=q.connection)
            if job.get_status(refresh=True) in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED,
                                                 JobStatus.SCHEDULED, JobStatus.FINISHED):
                continue
        except NoSuchJobError:
            pass
        todo.append((job_id, kwargs))
    # Count the jobs before any is enqueued: a fast worker finishing the first batch must not find
    # itself the last one and end the run while the others are still being enqueued.
    Run.objects.filter(pk=run.pk).update(jobs_total=F("jobs_total") + len(todo))
    ids = []
    try:
        for job_id, kwargs in todo:
            q.enqueue(job_func, args=(run.pk,), kwargs=kwargs or {}, job_id=job_id,
                      on_failure=Callback(job_failed), failure_ttl=7 * 86400, result_ttl=86400)
            ids.append(job_id)
    finally:
        if len(ids) < len(todo):
            Run.objects.filter(pk=run.pk).update(jobs_total=F("jobs_total") - (len(todo) - len(ids)))
        run.refresh_from_db()
        run.job_ids = list(run.job_ids) + ids
        run.save(update_fields=["job_ids"])
    return ids


def job_failed(job, connection, type, value, tb):
    """RQ failure callback: the job raised, timed out or was abandoned; the run fails with the reason."""
    run_id = job.args[0] if job.args else None
    if run_id is None:
        return
    close_old_connections()
    mark_failed(run_id, f"{type.__name__}: {value}")
    reconcile(run_id)


def reconcile(run_id):
    """A run that failed mid-job (its worker killed, say) may not have flushed its last counts: the apps
    that keep rows per item set its counters from those rows."""
    run = Run.objects.filter(pk=run_id).only("pk", "kind").first()
    for fix in registry.reconcilers(run.kind) if run else ():
        fix(run)


def mark_failed(run_id, reason):
    Run.objects.filter(pk=run_id, status__in=Run.ACTIVE).update(
        status=Run.Status.FAILED, error=reason[:5000], finished_at=timezone.now()
    )


class _Heartbeat(threading.Thread):
    def __init__(self, run_id):
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.run_id = run_id
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(settings.SCENEIMG_HEARTBEAT_SECONDS):
            try:
                Run.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now())
            except Exception:  # a missed beat is not worth crashing the job for
                log.exception("heartbeat failed")
        connection.close()  # this thread's own connection; nobody else would close it


@contextmanager
def execute(run_id, progress=None):
    """Run one job (or the whole foreground command) of a Run, yielding its Tracker.

    Marks the run running, beats its heart, and finishes it: done when its last job ends,
    failed with the reason when a job raises, untouched when it was cancelled.
    """
    now = timezone.now()
    Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    run = Run.objects.get(pk=run_id)
    tracker = Tracker(run, progress)
    if run.status != Run.Status.RUNNING:  # cancelled or failed before this job started
        raise Cancelled()
    beat = _Heartbeat(run_id)
    beat.start()
    try:
        yield tracker
    except Cancelled:
        tracker.flush()
        stopped(run_id)
        raise
    except BaseException as exc:
        tracker.flush()
        mark_failed(run_id, "".join(traceback.format_exception_only(type(exc), exc)).strip())
        raise
    else:
        tracker.flush()
        finish_job(run_id)
        stopped(run_id)
    finally:
        beat.stop.set()


def stopped(run_id):
    """A cancelled run is finished once its work has stopped, not when someone pressed cancel: nothing
    it stores is newer than its finished_at."""
    Run.objects.filter(pk=run_id, status=Run.Status.CANCELLED).update(finished_at=timezone.now())


def finish_job(run_id):
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        run.jobs_done += 1
        fields = ["jobs_done"]
        if run.jobs_done >= max(run.jobs_total, 1) and run.status == Run.Status.RUNNING:
            run.status = Run.Status.DONE
            run.finished_at = timezone.now()
            fields += ["status", "finished_at"]
            if pipeline.in_pipeline(run):
                transaction.on_commit(lambda: pipeline.start_next(run_id))
        run.save(update_fields=fields)


def run_in_foreground(kind, stage, params, *, label="", progress=None, user=None):
    """What a management command does without --enqueue: one Run, one job, in this process."""
    run = create_run(kind, params, label=label, user=user)
    Run.objects.filter(pk=run.pk).update(jobs_total=1)
    with execute(run.pk, progress) as tracker:
        stage(tracker)
    run.refresh_from_db()
    return run


def cancel(run):
    """Cancel a run and the runs it started: queued jobs are dropped, running ones stop at their next
    check (and then set the run's finished_at; a run that never started is finished now)."""
    for child in run.children.filter(status__in=Run.ACTIVE):
        cancel(child)
    updated = Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
        status=Run.Status.CANCELLED, finished_at=timezone.now()
    ) or Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(status=Run.Status.CANCELLED)
    if updated:
        conn = django_rq.get_connection()
        for job_id in run.job_ids:
            try:
                job = Job.fetch(job_id, connection=conn)
                if job.get_status() in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
                    job.cancel()
            except Exception:
                pass
    return bool(updated)


def reap_stale_runs(stale_seconds=None):
    """Fail running runs whose worker stopped beating (SIGKILL, out of memory, machine gone).

    RQ itself notices an abandoned job only after its maintenance interval; the heartbeat is faster.
    """
    stale_seconds = settings.SCENEIMG_STALE_RUN_SECONDS if stale_seconds is None else stale_seconds
    cutoff = timezone.now() - timedelta(seconds=stale_seconds)
    # A cancelled run whose worker died before it stopped is finished as of its last heartbeat.
    Run.objects.filter(status=Run.Status.CANCELLED, finished_at__isnull=True, heartbeat_at__lt=cutoff).update(
        finished_at=F("heartbeat_at"))
    stale = [run for run in Run.objects.filter(status=Run.Status.RUNNING, heartbeat_at__lt=cutoff).only(
        "pk", "kind", "heartbeat_at", "job_ids") if not jobs_waiting(run)]
    for run in stale:
        mark_failed(
            run.pk,
            f"worker died: no heartbeat since {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(killed, out of memory or machine lost)",
        )
        reconcile(run.pk)  # the dead worker's last counts may never have been flushed
    return len(stale) + reap_lost_runs(stale_seconds)


def reap_lost_runs(grace_seconds, limit=500):
    """Fail queued runs older than `grace_seconds` none of whose RQ jobs still exists: no worker will
    ever start them. While Redis cannot be reached nothing is failed (a lost connection is not a lost job)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    queued = Run.objects.filter(status=Run.Status.QUEUED, created_at__lt=cutoff).only(
        "pk", "status", "job_ids", "created_at").order_by("pk")[:limit]
    lost = 0
    try:
        for run in queued:
            if jobs_lost(run, grace_seconds):
                lost += Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
                    status=Run.Status.FAILED, error=LOST_JOBS, finished_at=timezone.now())
    except RedisError:
        log.warning("could not check queued runs' jobs: Redis unreachable", exc_info=True)
    return lost


def run_job(run_id, stage):
    """The body of every thin RQ job: track the run and call the stage with its Tracker."""
    try:
        with execute(run_id) as tracker:
            stage(tracker)
    except Cancelled:
        return "cancelled"
    return "done"
