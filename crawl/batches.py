"""Ingest in batches: pictures are prepared (fetched or read, decoded, stored as files) by threads or by
a pool of processes, and each batch's rows are written by one process in one transaction (rows.write).

Preparing is where the time goes (the transfer and the pixels); writing is a few bulk statements per
batch, so one writer keeps up with every core preparing. A queued import is the same batches as RQ jobs
that any number of workers share.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from django.db import transaction
from django.db.models import Count

from crawl.models import Source
from crawl.rows import Outcome, source_row, write
from curation.models import Run
from curation.threads import db_pool

BATCH_SIZE = 64


def fail(run_id, sightings, exc):
    """A batch that raised: those of its items that have no Source get one saying so, and the run's
    notice says a batch failed; the run goes on with its other batches. Returns how many failed."""
    written = Source.objects.filter(run_id=run_id)
    paths = set(written.filter(path__in=[s.path for s in sightings if s.path]).values_list("path", flat=True))
    urls = set(written.filter(url__in=[s.url for s in sightings if s.url]).values_list("url", flat=True))
    reason = f"batch failed in a worker: {type(exc).__name__}: {exc}"[:2000]
    rows = [source_row(s, Outcome.ERROR, run=Run(pk=run_id), reason=reason) for s in sightings
            if s.path not in paths and s.url not in urls]
    Source.objects.bulk_create(rows)
    Run.objects.filter(pk=run_id).update(notice=f"{len(rows)} item(s) failed with their batch: {reason}"[:500])
    return len(rows)


def reconcile_counters(run):
    """Set a run's outcome counters to what its Source rows say (one count per outcome), keeping the
    counters that are no Source's (skipped links, for one)."""
    counts = dict(Source.objects.filter(run_id=run.pk).values("outcome").annotate(n=Count("id"))
                  .values_list("outcome", "n"))
    with transaction.atomic():
        current = Run.objects.select_for_update().only("counters").get(pk=run.pk)
        counters = {**current.counters, **{o: counts.get(o, 0) for o in Outcome.values}}
        Run.objects.filter(pk=run.pk).update(counters=counters)


def chunks(seq, size=None):
    seq, size = list(seq), size or BATCH_SIZE
    return [seq[i:i + size] for i in range(0, len(seq), size)]


# Each process of the pool prepares a batch with its own threads: downloads wait on the network, and
# the pixel work releases the GIL for most of its time.
_threads = None


def _init_child(workers):
    global _threads
    _threads = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prepare")


def _prepare_chunk(prepare_one, chunk):
    return list(_threads.map(prepare_one, chunk))


def default_processes():
    return os.cpu_count() or 1


def run(tracker, todo, prepare_one, *, processes=1, workers=8, batch_size=None):
    """Prepare every entry of `todo` with `prepare_one(entry) -> Item` and write them batch by batch,
    in order: the same batches and the same rows whatever the number of processes.

    With processes > 1 the preparing happens in a pool of forked processes (`prepare_one` and the
    entries must pickle; it must not touch the database), the writing here. A cancel is seen between
    batches: what is in hand is dropped, nothing more is written."""
    batches = chunks(todo, batch_size)
    if processes <= 1 or len(batches) <= 1:
        with db_pool(workers, "prepare") as pool:
            results = pool.map(prepare_one, todo)
            for batch in batches:
                tracker.check_cancelled()
                write([next(results) for _ in batch], run=tracker.run, tracker=tracker)
        return
    # Forked children never touch the database. The connections they inherit stay this process's:
    # psycopg closes a connection only in the process that opened it, and a forked child ends with
    # os._exit, so nothing of theirs is finalised there.
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init_child, initargs=(workers,)) as pool:
        futures = [pool.submit(_prepare_chunk, prepare_one, batch) for batch in batches]
        try:
            for future in futures:
                tracker.check_cancelled()
                write(future.result(), run=tracker.run, tracker=tracker)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
