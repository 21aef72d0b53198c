"""The keyword crawl against the loopback Baidu: paging, quirks, fallbacks, anti-bot, resumption."""
import hashlib
import json
import threading

import pytest

from crawl import baidu
from crawl.models import Source
from curation import runs
from curation.models import Image, Run
from tests.fakes.baidu import serve_for_test

# The crawl downloads in threads, which need committed rows to see each other's work.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_baidu(settings):
    yield from serve_for_test(settings)


def crawl(queries, limit=40, **kw):
    return runs.run_in_foreground(
        "crawl", lambda t: baidu.crawl_keywords(t, queries, limit_per_query=limit, **kw), {"queries": queries})


def test_overlapping_queries_store_each_distinct_image_once(fake_baidu):
    fake_baidu.queries = {"客厅": range(0, 100), "厨房": range(50, 150), "书桌": range(100, 200)}
    fake_baidu.objurl_mode = "mixed"
    run = crawl(["客厅", "厨房", "书桌"], limit=100, batch_size=8)
    assert run.status == Run.Status.DONE, run.error
    assert Image.objects.count() == 200
    assert run.counters["stored"] == 200 and run.counters["duplicate"] == 100
    assert Source.objects.filter(run=run).count() == 300
    overlap = Source.objects.filter(run=run, outcome="duplicate").values_list("query", flat=True)
    assert set(overlap) == {"厨房", "书桌"}
    # pages of 30 until listNum (100): 4 pages per query, and no request past the end
    assert fake_baidu.hits["acjson"] == 12
    assert fake_baidu.hits["original"] == 200 + 0  # known URLs are not fetched again
    src = Source.objects.filter(run=run, query="客厅", rank=1).get()
    assert src.url == fake_baidu.original_url(0) and src.provider == "baidu"
    assert src.page_url == "http://site0.example/post/0" and "<" not in src.title


def test_strict_fake_needs_warm_up_and_browser_headers(fake_baidu):
    fake_baidu.queries = {"q": range(5)}
    run = crawl(["q"])
    assert run.counters["stored"] == 5
    acjson = [h for m, p, h in fake_baidu.requests if p.startswith("/search/acjson")][0]
    assert "BAIDUID=" in acjson["Cookie"] and acjson["Accept-Language"].startswith("zh-CN")
    assert acjson["Referer"].startswith(fake_baidu.url) and "Mozilla" in acjson["User-Agent"]
    assert fake_baidu.hits["home"] >= 1 and fake_baidu.hits["index"] >= 1


def test_limit_per_query_and_short_page_end(fake_baidu):
    fake_baidu.queries = {"a": range(1000, 1100), "b": range(2000, 2007)}
    run = crawl(["a", "b"], limit=45)
    assert Source.objects.filter(run=run, query="a").count() == 45
    assert Source.objects.filter(run=run, query="b").count() == 7
    assert run.total == 45 + 7


def test_quirky_json_is_read(fake_baidu):
    fake_baidu.queries = {"q": range(300, 312)}
    fake_baidu.bad_escapes = fake_baidu.control_chars = fake_baidu.string_dims = True
    run = crawl(["q"])
    assert run.counters["stored"] == 12
    assert all("\\" not in t for t in Source.objects.values_list("title", flat=True))


def test_listnum_cap_ends_paging(fake_baidu):
    fake_baidu.queries = {"q": range(400, 500)}
    fake_baidu.list_cap = 35
    run = crawl(["q"], limit=100)
    assert Source.objects.filter(run=run).count() == 35
    assert fake_baidu.hits["acjson"] == 2


def test_failed_original_falls_back_to_replace_url_then_thumbnail(fake_baidu):
    fake_baidu.queries = {"q": [7, 8, 9]}
    fake_baidu.fail_originals = {8, 9}
    fake_baidu.objurl_mode = "gimg2"
    run = crawl(["q"])
    assert run.counters["stored"] == 3
    by_rank = {s.rank: s for s in Source.objects.filter(run=run)}
    assert by_rank[1].extra["fetched_from"] == fake_baidu.original_url(7)
    assert by_rank[2].extra["fetched_from"] == fake_baidu.replace_url(8)
    assert fake_baidu.hits["gimg2"] == 0  # the wrapper was unwrapped, never fetched
    fake_baidu.fail_replace = True
    fake_baidu.queries = {"r": [11]}
    fake_baidu.fail_originals = {11}
    run = crawl(["r"])
    src = Source.objects.get(run=run)
    assert src.outcome == "stored"
    assert src.extra["fetched_from"] == fake_baidu.thumb_url(11)
    assert src.extra["fetched_via"] == "thumbnail" and "thumbnail" in src.reason
    assert (src.image.width, src.image.height) == (500, 375)
    assert src.url == fake_baidu.original_url(11)  # the Source still names the original


def test_antiflag_burst_is_retried_then_recovers(fake_baidu):
    fake_baidu.queries = {"q": range(500, 560)}
    fake_baidu.antiflag_after, fake_baidu.antiflag_count = 1, 2
    run = crawl(["q"], limit=60)
    assert run.status == Run.Status.DONE
    assert run.counters["stored"] == 60 and run.error == ""


def test_persistent_antiflag_records_error_and_keeps_what_was_stored(fake_baidu, settings):
    settings.SCENEIMG_BAIDU_REFUSAL_RETRIES = 2
    fake_baidu.queries = {"a": range(600, 660), "b": range(700, 760), "c": range(800, 860)}
    fake_baidu.antiflag_after = 1  # the first page of "a" passes, then Baidu blocks for good
    run = crawl(["a", "b", "c"], limit=60)
    assert run.status == Run.Status.DONE
    assert run.counters["stored"] == 30
    assert "Baidu refused the request: anti-spider" in run.error
    assert "2 queries in a row" in run.error and "1 queries not crawled" in run.error
    assert Image.objects.count() == 30
    assert run.total == 30  # refused and skipped queries give back their share: the progress ends at 100 %
    assert fake_baidu.hits["acjson"] == 1 + 3 + 3  # "a": page 1, then 3 tries; "b": 3 tries; "c" skipped


def test_refused_from_the_start_fails_the_run(fake_baidu, settings):
    settings.SCENEIMG_BAIDU_REFUSAL_RETRIES = 1
    fake_baidu.captcha_after = 0
    with pytest.raises(baidu.BaiduRefused, match="anti-spider"):
        crawl(["q"])
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED and "Baidu refused the request: anti-spider (captcha)" in run.error


def test_captcha_redirect_is_detected_not_parsed(fake_baidu):
    fake_baidu.queries = {"q": range(900, 930)}
    fake_baidu.captcha_after, fake_baidu.captcha_count = 0, 1
    run = crawl(["q"], limit=30)
    assert run.counters["stored"] == 30
    assert fake_baidu.hits["captcha"] == 1


def test_cancelled_crawl_resumes_without_duplicate_rows(fake_baidu):
    fake_baidu.queries = {"a": range(1000, 1060), "b": range(1030, 1090)}
    fake_baidu.delay = 0.02
    run = runs.create_run("crawl", {"queries": ["a", "b"]})
    Run.objects.filter(pk=run.pk).update(jobs_total=1)

    def cancel_soon():
        import time

        from django.db import connection
        while Source.objects.filter(run=run).count() < 10:
            time.sleep(0.02)
        runs.cancel(run)
        connection.close()

    killer = threading.Thread(target=cancel_soon)
    killer.start()
    with pytest.raises(runs.Cancelled):
        with runs.execute(run.pk) as tracker:
            baidu.crawl_keywords(tracker, ["a", "b"], limit_per_query=60, batch_size=4)
    killer.join()
    first = Image.objects.count()
    assert 10 <= first < 90
    fake_baidu.delay = 0
    again = crawl(["a", "b"], limit=60)
    assert again.status == Run.Status.DONE
    assert Image.objects.count() == 90
    assert Image.objects.values("sha256").distinct().count() == 90
    assert again.counters["stored"] == 90 - first
    # each result has exactly one Source in the second run
    assert Source.objects.filter(run=again).count() == 120
    assert Source.objects.filter(run=again).values("query", "rank").distinct().count() == 120


def test_output_folder_gets_files_and_sidecars(fake_baidu, tmp_path):
    fake_baidu.queries = {"客厅 杂物": range(40, 44)}
    crawl(["客厅 杂物"], output=str(tmp_path), label="20240101-000000")
    folder = tmp_path / "客厅-杂物" / "20240101-000000"
    files = sorted(folder.glob("*.jpg"))
    assert len(files) == 4
    meta = json.loads(files[0].with_suffix(".json").read_text())
    # The original's sidecar keys (tests/crawl/test_original_output.py), SceneImg's beside them.
    assert meta["query"] == "客厅 杂物" and meta["source"].startswith(fake_baidu.url + "/img/")
    assert meta["sha1"] == files[0].stem == hashlib.sha1(files[0].read_bytes()).hexdigest()


def test_debug_relaxes_size_filter(fake_baidu, settings):
    settings.SCENEIMG_MIN_WIDTH = 1000
    fake_baidu.queries = {"q": [1, 2]}
    run = crawl(["q"])
    assert run.counters["invalid"] == 2
    fake_baidu.queries = {"r": [3, 4]}
    run = crawl(["r"], debug=True)
    assert run.counters["stored"] == 2


def test_one_result_failing_unexpectedly_is_an_error_source_and_the_crawl_goes_on(fake_baidu, monkeypatch):
    fake_baidu.queries = {"q": range(3000, 3010)}
    real = baidu.ingest_url
    broken = fake_baidu.original_url(3004)

    def flaky(url, sighting, **kw):
        if url == broken:
            raise RuntimeError("disk full")
        return real(url, sighting, **kw)

    monkeypatch.setattr(baidu, "ingest_url", flaky)
    run = crawl(["q"])
    assert run.status == Run.Status.DONE, run.error
    assert (run.counters["stored"], run.counters["error"]) == (9, 1)
    assert Source.objects.get(run=run, outcome="error").reason == "unexpected error: disk full"
