"""A fetch has a total deadline and a minimum transfer rate, and a cancel stops it mid-transfer: a
server that drips bytes cannot hold a worker thread for ever."""
import threading
import time

import pytest

from crawl.fetcher import Fetcher, FetchError
from tests.faults.drip import DripServer


@pytest.fixture
def drip():
    with DripServer(gap=0.2) as server:
        yield server


@pytest.fixture(autouse=True)
def loopback(settings):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    settings.SCENEIMG_FETCH_DEADLINE = 2.0
    settings.SCENEIMG_FETCH_MIN_RATE = 0
    settings.SCENEIMG_FETCH_RATE_WINDOW = 1.0


def timed(fn, limit=10):
    """(seconds taken, exception raised) for a call that must fail; fails itself if the call is still
    going after `limit` seconds (it is left to a daemon thread, stopped when the server stops)."""
    outcome = {}

    def call():
        try:
            fn()
        except BaseException as exc:  # noqa: B036 (the test inspects whatever it was)
            outcome["exc"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still fetching after {limit} s"
    assert "exc" in outcome, "the fetch succeeded"
    return time.monotonic() - started, outcome["exc"]


def test_a_dripping_body_stops_at_the_deadline(drip):
    took, exc = timed(lambda: Fetcher(retries=3, backoff=0.01).get(drip.url("/body")))
    assert isinstance(exc, FetchError) and "deadline" in str(exc)
    assert took < 3.0
    assert drip.hits == 1  # past its deadline a fetch is not retried


def test_dripping_headers_stop_at_the_deadline(drip):
    took, exc = timed(lambda: Fetcher(retries=3, backoff=0.01).get(drip.url("/headers")))
    assert isinstance(exc, FetchError) and "deadline" in str(exc)
    assert took < 3.0


def test_a_transfer_below_the_minimum_rate_stops_early(drip, settings):
    settings.SCENEIMG_FETCH_DEADLINE = 60.0
    settings.SCENEIMG_FETCH_MIN_RATE = 1000
    took, exc = timed(lambda: Fetcher(retries=3, backoff=0.01).get(drip.url("/body")))
    assert isinstance(exc, FetchError) and "too slow" in str(exc)
    assert took < 2.5
    assert drip.hits == 1


def test_a_slow_transfer_above_the_minimum_rate_completes(drip, settings):
    settings.SCENEIMG_FETCH_DEADLINE = 30.0
    settings.SCENEIMG_FETCH_MIN_RATE = 20_000
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=Fetcher().get(drip.url("/steady?rate=100000"))),
                              daemon=True)
    thread.start()
    thread.join(10)
    assert len(result["r"].content) == 200_000


def test_the_deadline_covers_retries_and_their_backoff(drip):
    took, exc = timed(lambda: Fetcher(retries=50, backoff=0.3).get(drip.url("/503")))
    assert isinstance(exc, FetchError)
    assert took < 3.0


class Stop(Exception):
    pass


def test_a_cancel_stops_a_transfer_in_progress(drip, settings):
    settings.SCENEIMG_FETCH_DEADLINE = 60.0
    cancelled = threading.Event()

    def check():
        if cancelled.is_set():
            raise Stop()

    threading.Timer(0.6, cancelled.set).start()
    took, exc = timed(lambda: Fetcher(check=check).get(drip.url("/body")))
    assert isinstance(exc, Stop)
    assert took < 1.5


def test_a_cancel_before_a_retry_stops_it(drip):
    calls = []

    def check():
        calls.append(1)
        if len(calls) > 1:
            raise Stop()

    _, exc = timed(lambda: Fetcher(retries=5, backoff=0.01, check=check).get(drip.url("/503")))
    assert isinstance(exc, Stop)
    assert drip.hits == 1


def test_the_connection_pool_survives_a_deadline(drip, settings):
    """A socket shut down at the deadline is not handed to the next fetch."""
    from tests.fakes.image_host import ImageHost, image_bytes

    fetcher = Fetcher(retries=0)
    timed(lambda: fetcher.get(drip.url("/body")))
    with ImageHost("127.0.0.1") as host:
        assert fetcher.get(host.url("/img/1.jpg")).content == image_bytes(1)
