"""The runs pages: list, live rows that stop polling, cancel, staff launch forms."""
from datetime import timedelta

import django_rq
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from curation import launch, registry, run_views
from curation.models import Run
from sceneimg_site import queues
from tests.factories import image_row

pytestmark = pytest.mark.django_db


def test_runs_pages_require_login(client):
    run = Run.objects.create(kind="clip")
    for url in ("/runs/", f"/runs/{run.pk}/", f"/runs/{run.pk}/row/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_list_shows_status_counters_progress_and_escaped_errors(client, reviewer):
    Run.objects.create(kind="import", status="running", total=200, counters={"stored": 40, "duplicate": 10},
                       heartbeat_at=timezone.now())
    Run.objects.create(kind="vlm", status="failed", error="<script>alert('x')</script> boom")
    html = client.get("/runs/").content.decode()
    assert 'value="25"' in html and "50 / 200" in html  # (40 + 10) / 200
    assert "stored&nbsp;40" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; boom" in html
    assert 'hx-trigger="every 2s"' in html  # the running run polls
    assert "Launch a run" not in html  # not staff


def test_listing_fails_runs_whose_worker_stopped_beating(client, reviewer):
    stale = Run.objects.create(kind="clip", status="running",
                               heartbeat_at=timezone.now() - timedelta(seconds=3600))
    client.get("/runs/")
    stale.refresh_from_db()
    assert stale.status == "failed" and "worker died" in stale.error


def test_row_polls_while_active_and_answers_286_when_ended(client, reviewer):
    run = Run.objects.create(kind="clip", status="running", heartbeat_at=timezone.now(), total=10,
                             counters={"processed": 3})
    active = client.get(f"/runs/{run.pk}/row/")
    assert active.status_code == 200 and b'hx-trigger="every 2s"' in active.content
    assert b'value="30"' in active.content
    Run.objects.filter(pk=run.pk).update(status="done", counters={"processed": 10})
    ended = client.get(f"/runs/{run.pk}/row/")
    assert ended.status_code == run_views.STOP_POLLING == 286
    assert b"hx-trigger" not in ended.content and b'value="100"' in ended.content
    card = client.get(f"/runs/{run.pk}/row/", {"view": "card"})
    assert card.status_code == 286 and b'id="run-card-' in card.content


def test_detail_page(client, reviewer):
    run = Run.objects.create(kind="export", status="queued", params={"filter": "final=keep"})
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert "filter: final=keep" in html and f"/export/{run.pk}/" in html


def test_staff_cancels_a_run_and_its_queued_jobs(client, staff, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = launch.launch_export(launch.export_params("final=keep"))
    assert django_rq.get_queue(queues.EXPORT).count == 1
    response = client.post(f"/runs/{run.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert django_rq.get_queue(queues.EXPORT).count == 0


def test_only_staff_or_the_launcher_may_cancel(client, reviewer):
    other = Run.objects.create(kind="clip", status="queued")
    assert client.post(f"/runs/{other.pk}/cancel/").status_code == 403
    other.refresh_from_db()
    assert other.status == "queued"
    mine = Run.objects.create(kind="export", status="queued", created_by=reviewer)
    assert client.post(f"/runs/{mine.pk}/cancel/").status_code == 302
    mine.refresh_from_db()
    assert mine.status == "cancelled"


def test_cancel_needs_post(client, staff):
    run = Run.objects.create(kind="clip", status="queued")
    assert client.get(f"/runs/{run.pk}/cancel/").status_code == 405


def test_launch_forms_are_for_staff_only(client, reviewer, tmp_path):
    response = client.post("/runs/launch/import_folder/", {"import_folder-path": str(tmp_path)})
    assert response.status_code == 403
    assert not Run.objects.exists()


def test_staff_without_the_add_run_permission_cannot_launch(client, tmp_path):
    client.force_login(User.objects.create_user("intern", password="pw-12345678", is_staff=True))
    response = client.post("/runs/launch/import_folder/", {"import_folder-path": str(tmp_path)})
    assert response.status_code == 403
    assert not Run.objects.exists()
    page = client.get("/runs/")
    assert page.context["launchers"] == []
    assert b'id="launch-import_folder"' not in page.content


def test_staff_sees_a_form_for_every_registered_stage(client, staff):
    response = client.get("/runs/")
    keys = [stage.key for stage, _ in response.context["launchers"]]
    assert keys == [stage.key for stage in registry.stages()]
    assert {"crawl", "similar", "import_folder", "import_urls", "clip", "dedup", "vlm", "export"} <= set(keys)
    assert b'id="launch-import_folder"' in response.content


def test_an_unregistered_stage_cannot_be_launched(client, staff):
    assert client.post("/runs/launch/ghost/", {}).status_code == 404


def test_staff_launches_a_folder_import(client, staff, tmp_path, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/runs/launch/import_folder/", {
            "import_folder-path": str(tmp_path), "import_folder-recursive": "on", "import_folder-label": "batch 1"})
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/#run-{run.pk}"
    assert run.kind == "import" and run.created_by == staff and run.label == "batch 1"
    assert run.params == {"path": str(tmp_path.resolve()), "recursive": True, "label": "batch 1"}
    job = django_rq.get_queue(queues.CRAWL).jobs[0]
    assert job.func_name == "crawl.jobs.import_folder_batch_job" and job.args == (run.pk,)


def test_staff_launches_a_url_list_import(client, staff, settings, tmp_path, redis_conn,
                                          django_capture_on_commit_callbacks):
    settings.VAR_DIR = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/runs/launch/import_urls/", {
            "import_urls-urls": "http://a.test/1.jpg\nhttp://a.test/2.jpg\n", "import_urls-workers": "4"})
    run = Run.objects.get()
    assert run.params["workers"] == 4
    assert open(run.params["file"]).read().split() == ["http://a.test/1.jpg", "http://a.test/2.jpg"]
    assert run.params["file"].startswith(str(tmp_path))


def test_staff_launches_a_keyword_crawl_and_a_reverse_image_expansion(client, staff, redis_conn,
                                                                      django_capture_on_commit_callbacks):
    from tests.images import encode, photo_like

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/runs/launch/crawl/", {"crawl-queries": "杂乱的客厅\n书桌", "crawl-limit_per_query": "30",
                                            "crawl-batch_size": "8", "crawl-per_host": "4"})
        seed = SimpleUploadedFile("seed.jpg", encode(photo_like(400, 300, 1), "JPEG"), content_type="image/jpeg")
        client.post("/runs/launch/similar/", {
            "similar-seeds": seed, "similar-limit_per_seed": "20", "similar-batch_size": "4",
            "similar-max_concurrent": "1", "similar-dhash_threshold": "18", "similar-dhash_min_distance": "4",
            "similar-per_host": "4"})
    crawl, similar = Run.objects.order_by("id")
    assert crawl.kind == "crawl" and crawl.params["queries"] == ["杂乱的客厅", "书桌"]
    assert crawl.params["limit_per_query"] == 30 and crawl.created_by == staff
    assert similar.kind == "similar" and len(similar.params["seeds"]) == 1
    assert {job.args for job in django_rq.get_queue(queues.CRAWL).jobs} == {(crawl.pk,), (similar.pk,)}


def test_bad_launch_form_says_why_and_launches_nothing(client, staff):
    response = client.post("/runs/launch/import_folder/", {"import_folder-path": "/no/such/folder"}, follow=True)
    assert "is not a folder on the server" in response.content.decode()
    assert not Run.objects.exists()


def make_images(n):
    return [image_row(i, final_decision="keep") for i in range(1, n + 1)]


def test_staff_launches_clip_in_batches(client, staff, settings, redis_conn, django_capture_on_commit_callbacks):
    settings.SCENEIMG_CLIP_JOB_SIZE = 2
    images = make_images(3)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/runs/launch/clip/", {"clip-input": "all", "clip-indoor_margin": "0.02",
                                           "clip-detector_threshold": "0.5"})
    run = Run.objects.get()
    assert run.kind == "clip" and run.total == 3 and run.jobs_total == 2 and run.params["indoor_margin"] == 0.02
    jobs = django_rq.get_queue(queues.SCORE).jobs
    assert sorted(i for job in jobs for i in job.kwargs["image_ids"]) == [img.pk for img in images]


def test_clip_launch_with_unknown_input_says_why(client, staff):
    response = client.post("/runs/launch/clip/", {"clip-input": "no-such-label", "clip-indoor_margin": "0",
                                                  "clip-detector_threshold": "0.5"}, follow=True)
    assert "no run has this label" in response.content.decode()
    assert not Run.objects.exists()


def test_staff_launches_dedup(client, staff, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/runs/launch/dedup/", {"dedup-threshold": "6"})
    run = Run.objects.get()
    assert run.kind == "dedup" and run.params == {"threshold": 6}
    assert django_rq.get_queue(queues.DEFAULT).count == 1


def test_staff_launches_vlm_on_a_selection(client, staff, redis_conn, django_capture_on_commit_callbacks):
    images = make_images(2)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/runs/launch/vlm/", {
            "vlm-backend": "ollama-local", "vlm-model": "llava:latest", "vlm-decision": "keep",
            "vlm-min_score": "0.6", "vlm-workers": "2", "vlm-timeout": "30"})
    run = Run.objects.get()
    assert run.kind == "vlm" and run.params["backend"] == "ollama-local" and run.params["images"] == 2
    job = django_rq.get_queue(queues.VLM).jobs[0]
    assert job.func_name == "vlm.jobs.filter_vlm_job"
    assert sorted(job.kwargs["image_ids"]) == [img.pk for img in images]


def test_vlm_launch_needs_a_selection(client, staff):
    response = client.post("/runs/launch/vlm/", {
        "vlm-backend": "ollama-local", "vlm-min_score": "0.6", "vlm-workers": "2", "vlm-timeout": "30"}, follow=True)
    assert "Say what to judge" in response.content.decode()
    assert not Run.objects.exists()


def test_list_ignores_a_before_cursor_that_is_not_ascii_digits(client, reviewer):
    Run.objects.create(kind="clip")
    response = client.get("/runs/", {"before": "²"})
    assert response.status_code == 200 and len(response.context["rows"]) == 1


def test_cancel_returns_to_the_page_it_came_from_but_only_on_this_site(client, staff):
    run = Run.objects.create(kind="export", status="queued")
    back = client.post(f"/runs/{run.pk}/cancel/", {"next": f"/export/{run.pk}/"})
    assert back.status_code == 302 and back["Location"] == f"/export/{run.pk}/"
    other = Run.objects.create(kind="export", status="queued")
    away = client.post(f"/runs/{other.pk}/cancel/", {"next": "https://evil.example/"})
    assert away["Location"] == "/runs/"
