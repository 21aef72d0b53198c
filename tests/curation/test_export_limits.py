"""Exports cannot fill the disk: unknown filter keys are refused, an identical export is reused, old
exports are deleted by purge_exports, and one user may run only so many exports at once."""
import io
import os
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from curation import export, launch
from curation.jobs import export_job
from curation.models import Image, Run
from curation.registry import LaunchError
from tests.factories import stored_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def exports(settings, tmp_path):
    settings.SCENEIMG_EXPORT_DIR = str(tmp_path / "exports")
    for seed in (1, 2, 3):
        stored_image(seed, auto_decision="keep")
    return tmp_path / "exports"


@pytest.fixture
def user(client):
    user = User.objects.create_user("exporter", password="pw-12345678")
    client.force_login(user)
    return user


def run_export(user, filter_string="final=keep", fmt="zip"):
    run = launch.launch_export(launch.export_params(filter_string, fmt), user)
    export_job(run.pk, filter=filter_string, format=fmt, shard_size=run.params.get("shard_size"))
    run.refresh_from_db()
    assert run.status == Run.Status.DONE, run.error
    return run


def test_web_refuses_an_unknown_filter_key_naming_it(client, user, exports, redis_conn):
    response = client.post("/export/", {"filter": "final=keep&junk_key=1", "format": "zip"})
    assert response.status_code == 400
    assert "junk_key" in response.content.decode()
    assert not Run.objects.exists()


def test_command_refuses_an_unknown_filter_key(exports, tmp_path):
    with pytest.raises(CommandError, match="unknown filter key 'bogus'"):
        call_command("export_curated", "--filter", "final=keep&bogus=2", "--out", str(tmp_path / "x.zip"))
    assert not (tmp_path / "x.zip").exists()


def test_page_state_in_a_copied_gallery_link_is_no_unknown_key(exports):
    assert list(export.check_filter("final=keep&after=abc")) == ["final"]


def test_an_identical_export_reuses_the_file_and_a_change_makes_a_new_one(user, exports, redis_conn):
    first = run_export(user)
    second = run_export(user)
    assert second.pk != first.pk and second.result == first.result
    assert f"#{first.pk}" in second.notice and second.counters.get("reused") == 1
    assert sorted(p.name for p in exports.iterdir()) == [f"export-{first.pk}.zip"]
    other_format = run_export(user, fmt="parquet")
    assert other_format.result != first.result
    Image.objects.filter(pk=Image.objects.order_by("pk").first().pk).update(human_decision="reject",
                                                                         final_decision="reject")
    changed = run_export(user)
    assert changed.result == str(exports / f"export-{changed.pk}.zip") and not changed.notice
    assert len(export.read_metadata(changed.result)) == 2


def test_a_command_line_export_is_always_written(user, exports, tmp_path):
    run_export(user)
    out = tmp_path / "mine.zip"
    call_command("export_curated", "--filter", "final=keep", "--out", str(out), stdout=io.StringIO())
    assert len(export.read_metadata(out)) == 3


def test_one_user_may_run_only_so_many_exports_at_once(client, user, exports, settings, redis_conn):
    settings.SCENEIMG_EXPORT_MAX_ACTIVE_PER_USER = 1
    queued = launch.launch_export(launch.export_params("final=keep", "zip"), user)
    assert launch.launch_export(launch.export_params("final=keep", "zip"), user).pk == queued.pk  # same work
    with pytest.raises(LaunchError, match="at most 1 at once"):
        launch.launch_export(launch.export_params("final=reject", "zip"), user)
    response = client.post("/export/", {"filter": "final=reject", "format": "zip"})
    assert response.status_code == 400 and "at most 1 at once" in response.content.decode()
    someone_else = User.objects.create_user("other")
    assert launch.launch_export(launch.export_params("final=reject", "zip"), someone_else).pk != queued.pk
    Run.objects.filter(pk=queued.pk).update(status=Run.Status.DONE)
    launch.launch_export(launch.export_params("final=reject", "zip"), user)  # room again


def test_purge_deletes_old_exports_and_keeps_recent_ones(user, exports, settings):
    settings.SCENEIMG_EXPORT_RETENTION_DAYS = 7
    old = run_export(user)
    recent = run_export(user, fmt="parquet")
    stored = Run.objects.create(kind=Run.Kind.EXPORT, status=Run.Status.DONE, params={"format": "zip"},
                                result=export.STORAGE_PREFIX + default_storage.save("exports/export-999.zip",
                                                                                    ContentFile(b"PK")))
    leftover = exports / "export-998"  # a failed folder export's remains
    leftover.mkdir()
    long_ago = time.time() - 30 * 86400
    os.utime(leftover, (long_ago, long_ago))
    Run.objects.filter(pk__in=[old.pk, stored.pk]).update(finished_at=timezone.now() - timedelta(days=8))
    out = io.StringIO()
    call_command("purge_exports", "--dry-run", stdout=out)
    assert "would delete 2 export(s) and 1 leftover(s)" in out.getvalue()
    assert (exports / f"export-{old.pk}.zip").exists() and leftover.exists()
    call_command("purge_exports", stdout=out)
    assert not (exports / f"export-{old.pk}.zip").exists() and not leftover.exists()
    assert not default_storage.exists("exports/export-999.zip")
    assert (exports / f"export-{recent.pk}").is_dir()
    old.refresh_from_db()
    assert old.result == "" and "deleted" in old.notice


def test_a_file_reused_recently_is_as_young_as_its_newest_run(user, exports, settings):
    first = run_export(user)
    second = run_export(user)  # reuses first's file
    Run.objects.filter(pk=first.pk).update(finished_at=timezone.now() - timedelta(days=30))
    call_command("purge_exports", "--days", "7", stdout=io.StringIO())
    assert (exports / f"export-{first.pk}.zip").exists()
    Run.objects.filter(pk=second.pk).update(finished_at=timezone.now() - timedelta(days=8))
    call_command("purge_exports", "--days", "7", stdout=io.StringIO())
    assert not (exports / f"export-{first.pk}.zip").exists()
    assert set(Run.objects.filter(pk__in=[first.pk, second.pk]).values_list("result", flat=True)) == {""}
