"""Stages that run themselves: an import launched as a pipeline starts CLIP, and CLIP the VLM judge."""
import django_rq
import pytest
from django.core.management import call_command
from rq import SimpleWorker

from curation import runs
from curation.models import Run
from sceneimg_site import queues
from tests.images import encode, photo_like
from tests.vlm.conftest import fast_retries, openai_fake, prompts  # noqa: F401 (fixtures)
from vlm.models import VlmVerdict

pytestmark = pytest.mark.django_db(transaction=True)


def work(queue_name):
    queue = django_rq.get_queue(queue_name)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.fixture
def folder(tmp_path):
    for n in range(4):
        (tmp_path / f"room_{n}.jpg").write_bytes(encode(photo_like(640, 480, seed=n), "JPEG", quality=85))
    return tmp_path


def test_an_import_with_the_pipeline_runs_clip_then_the_vlm(folder, redis_conn, settings, prompts,  # noqa: F811
                                                            openai_fake):  # noqa: F811
    settings.SCENEIMG_PIPELINE_INDOOR_MARGIN = -1.0  # random weights: keep everything, so the VLM has work
    call_command("import_folder", str(folder), "--pipeline")
    imported = Run.objects.get(kind=Run.Kind.IMPORT)
    clip = Run.objects.get(kind=Run.Kind.CLIP)
    assert (clip.parent_id, clip.status, clip.total) == (imported.pk, Run.Status.QUEUED, 4)
    work(queues.SCORE)
    clip.refresh_from_db()
    assert clip.status == Run.Status.DONE and clip.counters.get("kept") == 4
    vlm = Run.objects.get(kind=Run.Kind.VLM)
    assert vlm.parent_id == clip.pk and vlm.params["images"] == 4
    work(queues.VLM)
    vlm.refresh_from_db()
    assert vlm.status == Run.Status.DONE and VlmVerdict.objects.count() == 4


def test_without_an_api_key_the_vlm_stage_is_skipped_with_a_notice(folder, redis_conn, settings, prompts):  # noqa: F811
    settings.SCENEIMG_PIPELINE_INDOOR_MARGIN = -1.0
    settings.SCENEIMG_VLM_BACKEND = "openai"
    settings.SCENEIMG_OPENAI_API_KEY = ""
    call_command("import_folder", str(folder), "--pipeline")
    work(queues.SCORE)
    clip = Run.objects.get(kind=Run.Kind.CLIP)
    assert clip.status == Run.Status.DONE
    assert clip.notice.startswith("pipeline: VLM judge skipped:") and "key" in clip.notice.lower()
    assert not Run.objects.filter(kind=Run.Kind.VLM).exists()


def test_without_the_pipeline_nothing_follows(folder, redis_conn):
    call_command("import_folder", str(folder))
    assert list(Run.objects.values_list("kind", flat=True)) == [Run.Kind.IMPORT]


def test_the_setting_turns_the_pipeline_on_and_the_flag_off(folder, redis_conn, settings):
    settings.SCENEIMG_PIPELINE = True
    call_command("import_folder", str(folder), "--no-pipeline")
    assert not Run.objects.filter(kind=Run.Kind.CLIP).exists()
    call_command("import_folder", str(folder), "--label", "second")
    assert Run.objects.filter(kind=Run.Kind.CLIP).count() == 1


def test_cancelling_a_run_cancels_the_runs_it_started(folder, redis_conn):
    call_command("import_folder", str(folder), "--pipeline")
    imported, clip = Run.objects.get(kind=Run.Kind.IMPORT), Run.objects.get(kind=Run.Kind.CLIP)
    Run.objects.filter(pk=imported.pk).update(status=Run.Status.RUNNING)  # as if still importing
    imported.refresh_from_db()
    assert runs.cancel(imported)
    clip.refresh_from_db()
    assert clip.status == Run.Status.CANCELLED


def test_the_runs_page_lists_a_pipeline_as_a_tree(client, folder, redis_conn, django_user_model):
    call_command("import_folder", str(folder), "--pipeline")
    imported, clip = Run.objects.get(kind=Run.Kind.IMPORT), Run.objects.get(kind=Run.Kind.CLIP)
    Run.objects.filter(pk=clip.pk).update(notice="pipeline: VLM judge skipped: no key")
    client.force_login(django_user_model.objects.create_user("viewer", password="pw-12345678"))
    page = client.get("/runs/").content.decode()
    assert page.index(f'id="run-{imported.pk}"') < page.index(f'id="run-{clip.pk}"')
    assert 'class="run-row run-child"' in page and "VLM judge skipped" in page
    flat = client.get("/runs/?kind=clip").content.decode()
    assert f'id="run-{imported.pk}"' not in flat and f'id="run-{clip.pk}"' in flat
