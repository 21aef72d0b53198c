"""Per-host politeness held across processes through Redis: slots, a killed worker's lease, shared pauses."""
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from crawl import politeness
from crawl.fetcher import Fetcher, TooSlow
from tests.fakes.image_host import ImageHost, image_bytes

FORK = multiprocessing.get_context("fork")


@pytest.fixture
def host(settings, redis_conn):  # redis_conn empties this test's Redis database before and after
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    settings.SCENEIMG_FETCH_SHARED_LIMITS = True
    with ImageHost() as h:
        yield h


def key_of(host):
    return politeness.url_key(host.base_url)


def fetch_in_threads(base, numbers, per_host, results):
    """One worker process: four threads, one Fetcher, as an RQ work horse importing URLs runs them."""
    fetcher = Fetcher(per_host=per_host, retries=0)

    def one(n):
        try:
            return n, fetcher.get(f"{base}/slow/{n}.jpg?s=0.15&close=1").content == image_bytes(n)
        except Exception as exc:  # reported to the test, which names it
            return n, repr(exc)

    with ThreadPoolExecutor(4) as pool:
        results.put(list(pool.map(one, numbers)))


def test_four_worker_processes_keep_to_the_per_host_limit_together(host):
    results = FORK.Queue()
    workers = [FORK.Process(target=fetch_in_threads, args=(host.base_url, range(w * 6, w * 6 + 6), 2, results))
               for w in range(4)]
    for w in workers:
        w.start()
    outcomes = dict(pair for _ in workers for pair in results.get(timeout=60))
    for w in workers:
        w.join(10)
    print(f"most connections open at once: {host.peak_connections}; most requests in hand: {host.peak}")
    assert outcomes == {n: True for n in range(24)}
    assert host.peak_connections == 2
    assert host.peak == 2
    assert politeness.held(key_of(host)) == 0


def hold_a_slot(base):
    Fetcher(per_host=1, retries=0).get(f"{base}/slow/1.jpg?s=20")


def test_a_killed_workers_slot_comes_free_when_its_lease_runs_out(host, settings):
    settings.SCENEIMG_FETCH_SLOT_LEASE = 1.0
    settings.SCENEIMG_FETCH_DEADLINE = 15.0
    worker = FORK.Process(target=hold_a_slot, args=(host.base_url,))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while politeness.held(key_of(host)) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # past one lease: the live worker keeps renewing it
        assert politeness.held(key_of(host)) == 1
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
    assert Fetcher(per_host=1, retries=0).get(host.url("/img/2.jpg")).content == image_bytes(2)
    assert host.hits["/img/2.jpg"] == 1
    assert politeness.held(key_of(host)) == 0


def test_a_paused_host_waits_for_every_worker(host, settings):
    politeness.pause(key_of(host), 1.5)  # as another worker does on a Retry-After or a refusal
    settings.SCENEIMG_FETCH_DEADLINE = 0.5
    with pytest.raises(TooSlow, match="paused"):
        Fetcher(retries=0).get(host.url("/img/3.jpg"))
    assert "/img/3.jpg" not in host.hits
    settings.SCENEIMG_FETCH_DEADLINE = 10.0
    assert Fetcher(retries=0).get(host.url("/img/3.jpg")).content == image_bytes(3)


def test_a_retry_after_pauses_the_host_for_other_fetchers(host, settings):
    settings.SCENEIMG_FETCH_DEADLINE = 10.0
    first = {}
    told = threading.Thread(target=lambda: first.update(
        r=Fetcher(retries=1).get(host.url("/retry-after/4.jpg?after=2"))))
    told.start()
    deadline = time.monotonic() + 5
    while not politeness.paused_for(key_of(host)) and time.monotonic() < deadline:
        time.sleep(0.02)
    settings.SCENEIMG_FETCH_DEADLINE = 0.3
    with pytest.raises(TooSlow):
        Fetcher(retries=0).get(host.url("/img/5.jpg"))
    told.join(10)
    assert first["r"].content == image_bytes(4)
    assert host.hits["/retry-after/4.jpg"] == 2 and "/img/5.jpg" not in host.hits


def test_without_redis_the_limit_holds_per_process_with_a_warning(host, settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="crawl.politeness"):
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda n: Fetcher(per_host=2, retries=0).get(
                host.url(f"/slow/{n}.jpg?s=0.1&close=1")).content, range(6)))
    assert got == [image_bytes(n) for n in range(6)]
    assert host.peak == 2
    assert "Redis at redis://127.0.0.1:1/0 cannot be reached" in caplog.text


class Stop(Exception):
    pass


def test_a_cancel_is_seen_while_waiting_for_a_busy_slot(host, settings):
    settings.SCENEIMG_FETCH_DEADLINE = 30.0
    holder = threading.Thread(target=lambda: Fetcher(per_host=1, retries=0).get(host.url("/slow/1.jpg?s=4")),
                              daemon=True)
    holder.start()
    deadline = time.monotonic() + 10
    while host.active < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    cancelled, outcome = threading.Event(), []

    def check():
        if cancelled.is_set():
            raise Stop()

    def wait_for_the_slot():
        try:
            Fetcher(per_host=1, retries=0, check=check).get(host.url("/img/9.jpg"))
        except Stop:
            outcome.append("stopped")

    waiter = threading.Thread(target=wait_for_the_slot, daemon=True)
    waiter.start()
    time.sleep(0.3)
    cancelled.set()
    waiter.join(3)  # the slot stays busy for 4 s
    assert outcome == ["stopped"] and "/img/9.jpg" not in host.hits
    holder.join(10)


def test_baidu_pacing_is_one_queue_for_every_worker(host):
    from crawl.baidu import Pacer

    slept = []
    first, second = (Pacer(interval=0.5, sleep=slept.append, key=key_of(host)) for _ in range(2))
    first.wait()
    second.wait()  # another worker's Pacer: it waits for the turn after the first one's
    assert len(slept) == 1 and 0.3 < slept[0] <= 0.5
