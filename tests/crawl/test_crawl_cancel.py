"""A cancelled Baidu crawl stops fetching: its fetcher checks the run's cancel while it waits, even
while Baidu's anti-spider back-off holds every worker off the host."""
import threading
import time

import pytest
from django.db import connection

from crawl import baidu, politeness
from curation import runs
from curation.models import Run
from tests.fakes.baidu import serve_for_test

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_baidu(settings, redis_conn):
    yield from serve_for_test(settings)


def test_a_cancel_during_the_anti_spider_back_off_stops_the_crawl(fake_baidu, settings):
    settings.SCENEIMG_BAIDU_REFUSAL_BACKOFF = 30.0
    fake_baidu.queries = {"q": range(30)}
    fake_baidu.antiflag_after = 0  # every acjson answer is antiFlag: the crawl backs off
    run = runs.create_run("crawl", {"queries": ["q"]})
    Run.objects.filter(pk=run.pk).update(jobs_total=1)
    outcome = []

    def crawl():
        try:
            with runs.execute(run.pk) as tracker:
                baidu.crawl_keywords(tracker, ["q"], limit_per_query=30)
        except runs.Cancelled:
            outcome.append("cancelled")
        finally:
            connection.close()

    thread = threading.Thread(target=crawl, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not politeness.paused_for(politeness.url_key(fake_baidu.url)) and time.monotonic() < deadline:
        time.sleep(0.02)
    # The back-off is in Redis: every worker on every machine holds off Baidu, not only this crawl.
    assert politeness.paused_for(politeness.url_key(fake_baidu.url)) > 20
    assert runs.cancel(run)
    thread.join(15)  # the back-off alone lasts 30 s
    assert not thread.is_alive(), "still crawling after the cancel"
    assert outcome == ["cancelled"]
    assert fake_baidu.hits["acjson"] == 1
