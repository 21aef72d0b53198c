"""The runs pages as a person uses them: what failed and why, live times, refused launches keep values."""
import pytest

from crawl.models import Source
from curation.models import Run

pytestmark = pytest.mark.django_db


def test_a_runs_page_lists_the_items_that_failed_and_why(client_in):
    run = Run.objects.create(kind=Run.Kind.IMPORT, params={}, status=Run.Status.DONE)
    Source.objects.create(run=run, provider="url_list", url="http://example.test/a.jpg", outcome="error",
                          reason="HTTP 503 after 3 tries")
    Source.objects.create(run=run, provider="url_list", url="http://example.test/b.jpg", outcome="stored")
    html = client_in.get(f"/runs/{run.pk}/").content.decode()
    assert "http://example.test/a.jpg" in html and "HTTP 503 after 3 tries" in html
    assert "http://example.test/b.jpg" not in html


def test_the_polled_card_carries_the_times_and_jobs(client_in):
    run = Run.objects.create(kind=Run.Kind.IMPORT, params={}, status=Run.Status.RUNNING, jobs_total=3, jobs_done=1)
    card = client_in.get(f"/runs/{run.pk}/row/?view=card").content.decode()
    assert "jobs 1 / 3" in card and "last heartbeat" in card


def test_a_refused_launch_keeps_what_was_typed(client, staff, tmp_path):
    response = client.post("/runs/launch/clip/", {"clip-input": "no-such-label", "clip-indoor_margin": "0.3",
                                                  "clip-detector_threshold": "0.5", "clip-label": "my try"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'value="no-such-label"' in html and 'value="0.3"' in html and 'value="my try"' in html
    assert 'id="launch-clip" class="refused"' in html
    assert not Run.objects.exists()


def test_the_clip_form_refuses_a_minimum_above_the_maximum(client, staff):
    response = client.post("/runs/launch/clip/", {"clip-input": "all", "clip-indoor_margin": "0.02",
                                                  "clip-detector_threshold": "0.5", "clip-object_count_min": "9",
                                                  "clip-object_count_max": "3"})
    assert response.status_code == 400 and "is above the maximum" in response.content.decode()
    assert not Run.objects.exists()


def test_size_checks_can_be_switched_off_from_the_web_as_on_the_command_line(client, staff, tmp_path, settings,
                                                                             redis_conn):
    settings.SCENEIMG_IMPORT_ROOTS = [str(tmp_path)]
    response = client.post("/runs/launch/import_folder/", {"import_folder-path": str(tmp_path),
                                                           "import_folder-min_width": "0"})
    assert response.status_code == 302
    assert Run.objects.get().params["min_width"] == 0
