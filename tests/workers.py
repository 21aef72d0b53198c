"""Real RQ worker processes for the tests that run several: started with the test's settings, stopped with
what they printed, and a poll for what the test waits on."""
import os
import signal
import subprocess
import sys
import time


def start_worker(env, *queue_names, burst=True, name=None, simple=False):
    """`manage.py rqworker` on `queue_names`, in a process group of its own (stop_workers ends it whole).
    `simple`: RQ's SimpleWorker runs each job in the worker process, so a model loads once per worker."""
    cmd = [sys.executable, "manage.py", "rqworker", *queue_names]
    if burst:
        cmd.append("--burst")
    if name:
        cmd += ["--name", name]
    if simple:
        cmd += ["--worker-class", "rq.worker.SimpleWorker"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def start_workers(env, queue, count, prefix):
    """`count` SimpleWorkers that stay up on `queue` (a django_rq queue); returns them and whether all of
    them registered with Redis within 90 seconds, which a test checks before giving them work."""
    from rq import Worker

    workers = [start_worker(env, queue.name, burst=False, name=f"{prefix}-{os.getpid()}-{n}", simple=True)
               for n in range(count)]
    try:
        return workers, wait_for(lambda: len(Worker.all(queue=queue)) == count, timeout=90)
    except BaseException:
        stop_workers(workers)
        raise


def stop_workers(workers):
    """SIGTERM the workers still running; returns the end of what each printed, for assertion messages."""
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    return "\n".join(worker.communicate(timeout=30)[0].decode(errors="replace")[-3000:] for worker in workers)


def wait_for(predicate, timeout=60, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
