"""Batched ingest: an Image row and its first Source commit together, grouping follows the commit, batches
write with a few statements, and a reaped run's counters are brought back in step with its Sources."""
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError
from django.utils import timezone

from crawl import rows
from crawl.ingest import Sighting, ingest_bytes, prepare
from crawl.models import Source
from curation import runs
from curation.models import Image, Run
from tests.images import encode, photo_like

pytestmark = pytest.mark.django_db


def jpeg(seed, w=400, h=300, quality=90):
    return encode(photo_like(w, h, seed), "JPEG", quality=quality)


def test_a_source_that_cannot_be_written_leaves_no_image_row():
    # An integer the rank column cannot hold (both databases refuse it): the Source insert fails.
    with pytest.raises((DatabaseError, OverflowError)):
        ingest_bytes(jpeg(1), Sighting(provider="folder", path="a.jpg", rank=10 ** 20))
    assert Image.objects.count() == 0
    # The files were written first; the next ingest of the picture stores it, not "same as itself".
    again = ingest_bytes(jpeg(1), Sighting(provider="folder", path="a.jpg"))
    assert (again.outcome, Image.objects.count()) == ("stored", 1)
    assert again.image.sources.count() == 1


def test_grouping_runs_after_the_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = ingest_bytes(jpeg(2), Sighting(provider="folder"))
        ingest_bytes(jpeg(2), Sighting(provider="folder"))
    assert first.outcome == "stored"
    assert len(callbacks) == 1  # the duplicate brought nothing new to group


def test_one_batch_is_a_few_statements_and_one_grouping(django_assert_max_num_queries,
                                                       django_capture_on_commit_callbacks):
    items = []
    for n in range(20):
        prepared, _ = prepare(jpeg(10 + n % 15))  # 15 pictures, 5 of them twice
        items.append(rows.Item(Sighting(provider="folder", path=f"{n}.jpg"), prepared=prepared))
    items.append(rows.Item(Sighting(provider="folder", path="bad.jpg"), outcome="invalid", reason="no"))
    with django_capture_on_commit_callbacks() as callbacks, django_assert_max_num_queries(8):
        written = rows.write(items)
    assert [r.outcome for r in written].count("stored") == 15
    assert [r.outcome for r in written].count("duplicate") == 5
    assert written[-1].outcome == "invalid"
    assert len(callbacks) == 1
    assert Source.objects.count() == 21 and Image.objects.count() == 15


def test_a_picture_stored_by_another_worker_meanwhile_is_not_stored_twice():
    prepared, _ = prepare(jpeg(40))
    other, _ = prepare(jpeg(41))
    Image.objects.bulk_create([prepared.image()])  # what another worker committed after we looked
    created = rows._insert_images([prepared.image(), other.image()])
    assert set(created) == {other.sha256}
    assert Image.objects.count() == 2


def test_reaping_a_dead_run_reconciles_its_counters_with_its_sources():
    stale = timezone.now() - timedelta(hours=1)
    run = Run.objects.create(kind=Run.Kind.IMPORT, status=Run.Status.RUNNING, heartbeat_at=stale,
                             counters={"stored": 1, "skipped": 2})
    image = ingest_bytes(jpeg(50), Sighting(provider="url_list", url="http://a/1"), run=run).image
    ingest_bytes(jpeg(50), Sighting(provider="url_list", url="http://a/2"), run=run)
    ingest_bytes(b"junk", Sighting(provider="url_list", url="http://a/3"), run=run)
    Source.objects.create(run=run, provider="url_list", outcome="error", reason="HTTP 500")
    Run.objects.filter(pk=run.pk).update(heartbeat_at=stale)  # the worker died before it counted them
    assert runs.reap_stale_runs(stale_seconds=60) == 1
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.counters == {"stored": 1, "duplicate": 1, "invalid": 1, "error": 1, "skipped": 2}
    assert image.sources.count() == 2


def test_reap_command_reconciles_too():
    stale = timezone.now() - timedelta(hours=1)
    run = Run.objects.create(kind=Run.Kind.CRAWL, status=Run.Status.RUNNING, heartbeat_at=stale)
    ingest_bytes(jpeg(60), Sighting(provider="baidu", url="http://b/1"), run=run)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=stale, counters={})
    call_command("reap_runs", "--stale-seconds", "60")
    run.refresh_from_db()
    assert run.counters["stored"] == 1


@pytest.mark.django_db(transaction=True)  # the failure callback closes stale connections first
def test_a_job_that_failed_in_its_worker_reconciles_its_run(redis_conn):
    from rq.job import Job

    run = Run.objects.create(kind=Run.Kind.IMPORT, status=Run.Status.RUNNING, counters={})
    ingest_bytes(jpeg(70), Sighting(provider="url_list", url="http://c/1"), run=run)
    job = Job.create(print, args=(run.pk,), connection=redis_conn)
    runs.job_failed(job, redis_conn, SystemExit, SystemExit("work-horse terminated"), None)
    run.refresh_from_db()
    assert (run.status, run.counters["stored"]) == ("failed", 1)
