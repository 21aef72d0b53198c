"""Launching crawl sources from the admin: the same runs as the commands, live page, cancel."""
import django_rq
import pytest
from django.urls import reverse
from rq import SimpleWorker

from crawl.ingest import Sighting, ingest_bytes
from crawl.models import Source
from curation.models import Image, Run
from tests.fakes.baidu import jpeg, picture, serve_for_test

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_baidu(settings):
    yield from serve_for_test(settings)


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "b@example.com", "pw-123456789")
    client.force_login(user)
    return user


def work_crawl_queue():
    queue = django_rq.get_queue("crawl")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def test_launch_pages_render_for_every_source(client, staff):
    for key in ("crawl", "similar", "import_urls", "import_folder", "clip", "dedup", "vlm", "export"):
        resp = client.get(reverse("admin:curation_launch", args=[key]))
        assert resp.status_code == 200, key
    assert b"Launch Baidu crawl" in client.get(reverse("admin:crawl_source_changelist")).content
    assert b"Launch: VLM judge" in client.get(reverse("admin:curation_run_changelist")).content


def test_non_staff_cannot_launch(client, django_user_model):
    user = django_user_model.objects.create_user("someone", password="pw-123456789")
    client.force_login(user)
    resp = client.post(reverse("admin:curation_launch", args=["crawl"]), {"queries": "x"})
    assert resp.status_code == 302 and "/login/" in resp["Location"]
    assert not Run.objects.exists()


def test_keyword_crawl_launched_runs_on_a_worker(client, staff, fake_baidu, redis_conn):
    fake_baidu.queries = {"客厅": range(60, 72), "厨房": range(66, 80)}
    resp = client.post(reverse("admin:curation_launch", args=["crawl"]), {
        "queries": "客厅\n厨房\n客厅", "limit_per_query": 50, "batch_size": 4, "label": "from-admin"})
    run = Run.objects.get()
    assert resp.status_code == 302 and resp["Location"] == reverse("curation:run_detail", args=[run.pk])
    assert (run.kind, run.status, run.label) == ("crawl", "queued", "from-admin")
    assert run.params["queries"] == ["客厅", "厨房"] and run.params["limit_per_query"] == 50
    work_crawl_queue()
    run.refresh_from_db()
    assert run.status == "done", run.error
    assert run.counters["stored"] == 20 and run.counters["duplicate"] == 6
    assert client.get(reverse("curation:run_detail", args=[run.pk])).status_code == 200


def test_invalid_form_shows_errors_and_launches_nothing(client, staff):
    resp = client.post(reverse("admin:curation_launch", args=["crawl"]), {"limit_per_query": 10, "batch_size": 2})
    assert resp.status_code == 200 and b"Give at least one query" in resp.content
    resp = client.post(reverse("admin:curation_launch", args=["similar"]), {
        "limit_per_seed": 5, "batch_size": 2, "max_concurrent": 1, "dhash_threshold": 18, "dhash_min_distance": 4,
        "seed_image_ids": "999999"})
    assert b"No image with id 999999" in resp.content
    assert not Run.objects.exists()


def test_similar_with_uploaded_seed_and_existing_image(client, staff, fake_baidu, redis_conn):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fake_baidu.similar_total = 5
    existing = ingest_bytes(jpeg(picture(31)), Sighting(provider="upload")).image
    upload = SimpleUploadedFile("kitchen.jpg", jpeg(picture(32)), content_type="image/jpeg")
    resp = client.post(reverse("admin:curation_launch", args=["similar"]), {
        "seeds": [upload], "seed_image_ids": str(existing.pk), "limit_per_seed": 5, "batch_size": 2,
        "max_concurrent": 2, "dhash_threshold": 18, "dhash_min_distance": 4, "no_phash": "on"})
    assert resp.status_code == 302
    run = Run.objects.get()
    assert run.kind == "similar" and len(run.params["seeds"]) == 2
    assert run.params["seeds"][0]["storage"].startswith("seeds/") and run.params["use_dhash"] is False
    work_crawl_queue()
    run.refresh_from_db()
    assert run.status == "done", run.error
    sources = Source.objects.filter(run=run)
    assert sources.count() == 10
    assert set(sources.values_list("seed_name", flat=True)) == {"kitchen.jpg", f"image-{existing.pk}"}
    assert sources.filter(seed_image=existing).count() == 5


def test_url_list_and_folder_imports_launch(client, staff, tmp_path, redis_conn):
    resp = client.post(reverse("admin:curation_launch", args=["import_urls"]),
                       {"urls": "http://127.0.0.1:9/a.jpg", "label": "u", "workers": 2})
    assert resp.status_code == 302
    (tmp_path / "a.jpg").write_bytes(jpeg(picture(41)))
    resp = client.post(reverse("admin:curation_launch", args=["import_folder"]), {"path": str(tmp_path), "label": "f"})
    assert resp.status_code == 302
    assert sorted(Run.objects.values_list("kind", "label")) == [("import", "f"), ("import", "u")]
    work_crawl_queue()
    folder_run = Run.objects.get(label="f")
    assert folder_run.status == "done" and folder_run.counters["stored"] == 1
    assert Image.objects.count() == 1


def test_queued_crawl_cancelled_never_runs(client, staff, fake_baidu, redis_conn):
    client.post(reverse("admin:curation_launch", args=["crawl"]), {"queries": "q", "limit_per_query": 5,
                                                                   "batch_size": 1})
    run = Run.objects.get()
    resp = client.post(reverse("curation:run_cancel", args=[run.pk]))
    assert resp.status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled"
    work_crawl_queue()
    assert fake_baidu.hits["acjson"] == 0 and not Source.objects.exists()
