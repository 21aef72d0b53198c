"""Thread pools for stages that touch the database from several threads."""
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from django.db import connections


@contextmanager
def db_pool(workers, prefix):
    """A thread pool whose threads close their database connections when it ends.

    Threads that touch the ORM each open a connection, and Django closes none of them for us: a
    long crawl would otherwise leave one idle Postgres session per download thread.
    """
    workers = max(1, int(workers))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=prefix)
    try:
        yield pool
    finally:
        barrier = threading.Barrier(workers)

        def close_here():
            try:
                barrier.wait(timeout=10)  # one task per thread: every thread is blocked here at once
            except threading.BrokenBarrierError:
                pass
            connections.close_all()

        for future in [pool.submit(close_here) for _ in range(workers)]:
            future.result()
        pool.shutdown()
