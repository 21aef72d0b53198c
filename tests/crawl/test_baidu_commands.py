"""crawl_baidu and search_by_images: the original flags, the summary line, clear failures."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from crawl.ingest import Sighting, ingest_bytes
from crawl.models import Source
from crawl.queries import DEFAULT_QUERIES
from curation.models import Run
from tests.fakes.baidu import jpeg, picture, serve_for_test

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_baidu(settings):
    yield from serve_for_test(settings)


def run_command(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_crawl_baidu_flags_and_summary(fake_baidu, tmp_path):
    fake_baidu.queries = {"a": range(3000, 3010), "b": range(3005, 3020), "c": range(3100, 3103)}
    qfile = tmp_path / "queries.txt"
    qfile.write_text("# kitchens\nb\n\nc\na\n", encoding="utf-8")
    out, _ = run_command("crawl_baidu", "-q", "a", "--query-file", str(qfile), "--limit-per-query", "8",
                         "--per-host", "2", "--batch-size", "3", "--timestamp-subdir", "--output",
                         str(tmp_path / "out"))
    # b's three overlaps with a do not count towards its 8: the limit counts stored images.
    assert out.strip().endswith("stored 19, duplicate 3, invalid 0, error 0")
    run = Run.objects.get()
    assert run.params["queries"] == ["a", "b", "c"] and run.params["per_host"] == 2
    assert len(run.label) == 15 and run.label[8] == "-"  # the timestamp label
    assert len(list((tmp_path / "out" / "a" / run.label).glob("*.jpg"))) == 8
    assert len(list((tmp_path / "out").rglob("*.json"))) == 19


def test_default_queries_are_used(fake_baidu):
    fake_baidu.default_results = 1
    out, _ = run_command("crawl_baidu", "--default-queries", "--limit-per-query", "1")
    assert f"stored {len(DEFAULT_QUERIES)}," in out
    assert Source.objects.values("query").distinct().count() == len(DEFAULT_QUERIES)


def test_crawl_baidu_without_queries_fails_clearly():
    with pytest.raises(CommandError, match="no queries"):
        run_command("crawl_baidu")


def test_crawl_baidu_refused_exits_nonzero_with_the_reason(fake_baidu, settings):
    settings.SCENEIMG_BAIDU_REFUSAL_RETRIES = 1
    fake_baidu.antiflag_after = 0
    with pytest.raises(CommandError, match="Baidu refused the request: anti-spider"):
        run_command("crawl_baidu", "-q", "x")


def test_crawl_baidu_enqueue(fake_baidu, redis_conn):
    out, _ = run_command("crawl_baidu", "-q", "x", "--enqueue")
    run = Run.objects.get()
    assert f"enqueued crawl run #{run.pk}" in out and run.status == "queued"
    assert fake_baidu.hits["acjson"] == 0


def test_search_by_images_flags_and_summary(fake_baidu, tmp_path):
    fake_baidu.similar_total = 10
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "room-1.jpg").write_bytes(jpeg(picture(71)))
    (seeds / "skip.png").write_bytes(jpeg(picture(72)))
    existing = ingest_bytes(jpeg(picture(73)), Sighting(provider="upload")).image
    out, _ = run_command("search_by_images", "--input-dir", str(seeds), "--glob", "room-*", "--seed-image-id",
                         str(existing.pk), "--limit-per-seed", "10", "--per-host", "4", "--batch-size", "4",
                         "--max-concurrent", "2", "--dhash-threshold", "20", "--dhash-min-distance", "3",
                         "--output", str(tmp_path / "out"), "--debug")
    run = Run.objects.get(kind="similar")
    c = run.counters
    assert out.strip().endswith(f"stored {c['stored']}, duplicate {c.get('duplicate', 0)}, "
                                f"invalid {c['invalid']}, error 0")
    assert c["stored"] + c.get("duplicate", 0) + c["invalid"] == 20
    assert {s["name"] for s in run.params["seeds"] if "name" in s} == {"room-1.jpg"}
    assert run.params["dhash_threshold"] == 20 and run.params["dhash_min_distance"] == 3
    assert (tmp_path / "out" / "room-1").is_dir()


def test_search_by_images_no_phash_no_dedup_enqueue(fake_baidu, tmp_path, redis_conn):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.jpg").write_bytes(jpeg(picture(81)))
    out, _ = run_command("search_by_images", "--input-dir", str(seeds), "--no-phash", "--no-dedup", "--enqueue")
    run = Run.objects.get()
    assert "enqueued similar run" in out
    assert run.params["use_dhash"] is False and run.params["dedup"] is False
    assert run.params["seeds"][0]["storage"].startswith("seeds/")  # readable by a worker elsewhere


def test_search_by_images_errors(tmp_path):
    with pytest.raises(CommandError, match="no seeds"):
        run_command("search_by_images")
    with pytest.raises(CommandError, match="does not exist"):
        run_command("search_by_images", "--input-dir", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="no image with id 424242"):
        run_command("search_by_images", "--seed-image-id", "424242")
    (tmp_path / "a.jpg").write_bytes(jpeg(picture(1)))
    with pytest.raises(CommandError, match="above --dhash-threshold"):
        run_command("search_by_images", "--input-dir", str(tmp_path), "--dhash-min-distance", "9",
                    "--dhash-threshold", "5")
