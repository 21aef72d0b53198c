"""The same work launched from a command (--enqueue), the runs page or the admin is one Run.

Each stage has one launch function; these tests hold the command and the web form to the same Run
parameters, so a second launch of the same work returns the first run instead of enqueuing again.
"""
import pytest
from django.core.management import call_command
from django.urls import reverse

from curation.models import Run
from tests.vlm.conftest import fast_retries, make_images, openai_fake, prompts  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def launch_from_runs_page(client, key, fields):
    response = client.post(f"/runs/launch/{key}/", {f"{key}-{name}": value for name, value in fields.items()})
    assert response.status_code == 302, response.content[:500]
    return Run.objects.order_by("-pk").first()


def launched_twice(command_args, client, key, fields):
    call_command(*command_args, "--enqueue")
    first = Run.objects.get()
    second = launch_from_runs_page(client, key, fields)
    return first, second


def test_folder_import_from_command_and_web_is_one_run(client, staff, tmp_path, redis_conn):
    first, second = launched_twice(["import_folder", str(tmp_path), "--label", "shots"], client, "import_folder",
                                   {"path": str(tmp_path), "label": "shots"})
    assert second.pk == first.pk and second.work_key == first.work_key
    assert Run.objects.count() == 1


def test_ingest_filter_flags_are_part_of_the_work_both_ways(client, staff, tmp_path, redis_conn):
    call_command("import_folder", str(tmp_path), "--min-width", "800", "--enqueue")
    web_same = launch_from_runs_page(client, "import_folder", {"path": str(tmp_path), "min_width": 800})
    web_other = launch_from_runs_page(client, "import_folder", {"path": str(tmp_path), "min_width": 900})
    assert Run.objects.count() == 2
    assert web_same.params["min_width"] == 800 and web_other.params["min_width"] == 900


def test_dedup_from_command_and_web_is_one_run(client, staff, redis_conn):
    first, second = launched_twice(["find_duplicates"], client, "dedup", {})
    assert second.pk == first.pk and first.params["threshold"] is not None


def test_clip_from_command_and_web_is_one_run(client, staff, make_images, redis_conn):  # noqa: F811
    make_images(3)
    first, second = launched_twice(["filter_clip", "--indoor-margin", "0.1"], client, "clip",
                                   {"input": "all", "indoor_margin": 0.1, "detector_threshold": 0.5})
    assert second.pk == first.pk and first.total == 3


def test_vlm_from_command_and_web_is_one_run(client, staff, prompts, openai_fake, make_images,  # noqa: F811
                                             redis_conn, settings):
    make_images(4)
    first, second = launched_twice(["filter_vlm", "--decision", "any", "--backend", "openai"], client, "vlm", {
        "backend": "openai", "decision": "any", "min_score": settings.SCENEIMG_VLM_MIN_SCORE,
        "workers": settings.SCENEIMG_VLM_WORKERS, "timeout": settings.SCENEIMG_VLM_TIMEOUT})
    assert second.pk == first.pk and first.params["images"] == 4


def test_vlm_launch_with_nothing_selected_is_refused_from_both(client, staff, prompts, openai_fake, settings):  # noqa: F811
    with pytest.raises(Exception, match="No images match"):
        call_command("filter_vlm", "--decision", "keep", "--backend", "openai", "--enqueue")
    response = client.post("/runs/launch/vlm/", {
        "vlm-backend": "openai", "vlm-decision": "keep", "vlm-min_score": 0.5, "vlm-workers": 2, "vlm-timeout": 5},
        follow=True)
    assert b"No images match" in response.content
    assert not Run.objects.exists()


def test_admin_launch_page_uses_the_same_launch(client, staff, tmp_path, redis_conn):
    call_command("import_folder", str(tmp_path), "--enqueue")
    response = client.post(reverse("admin:curation_launch", args=["import_folder"]), {"path": str(tmp_path)})
    assert response.status_code == 302
    assert Run.objects.count() == 1
