"""Seed uploads: a cap on their number and total size per launch, and seeds of runs that ended long
ago (or of no run at all) are removed after the retention period."""
import os
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from django.utils.datastructures import MultiValueDict

from crawl.baidu_similar import store_seed_upload
from crawl.forms import SimilarForm
from curation.models import Run

pytestmark = pytest.mark.django_db

FIELDS = {"limit_per_seed": 5, "batch_size": 4, "max_concurrent": 1, "dhash_threshold": 18,
          "dhash_min_distance": 4}


def form_with(files):
    uploads = MultiValueDict({"seeds": [SimpleUploadedFile(f"s{n}.jpg", data, content_type="image/jpeg")
                                        for n, data in enumerate(files)]})
    return SimilarForm(FIELDS, uploads)


def test_too_many_seeds_are_refused(settings):
    settings.SCENEIMG_SEED_MAX_FILES = 3
    assert form_with([b"a" * 10] * 3).is_valid()
    form = form_with([b"a" * 10] * 4)
    assert not form.is_valid()
    assert "at most 3 seed" in str(form.errors)


def test_seeds_over_the_total_size_are_refused(settings):
    settings.SCENEIMG_SEED_MAX_TOTAL_BYTES = 1000
    assert form_with([b"a" * 500, b"b" * 500]).is_valid()
    form = form_with([b"a" * 500, b"b" * 501])
    assert not form.is_valid()
    assert "in all" in str(form.errors)


def seed(data, name="s.jpg"):
    return store_seed_upload(name, data)


def similar_run(seeds, status, ended_days_ago=None):
    run = Run.objects.create(kind=Run.Kind.SIMILAR, params={"seeds": seeds}, status=status)
    if ended_days_ago is not None:
        Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=ended_days_ago))
    return run


def age_file(name, days):
    path = default_storage.path(name)
    stamp = time.time() - days * 86400
    os.utime(path, (stamp, stamp))


@pytest.fixture
def seeds(settings):
    settings.SCENEIMG_SEED_RETENTION_DAYS = 30
    old_done, old_failed, shared, recent, orphan_old, orphan_new = (seed(bytes([n]) * 50) for n in range(6))
    similar_run([old_done], "done", ended_days_ago=40)
    similar_run([old_failed], "failed", ended_days_ago=35)
    similar_run([shared], "cancelled", ended_days_ago=60)
    similar_run([shared], "running")
    similar_run([recent], "done", ended_days_ago=2)
    for spec in (old_done, old_failed, shared, recent, orphan_old, orphan_new):
        age_file(spec["storage"], 45)
    age_file(orphan_new["storage"], 1)
    return {"gone": [old_done, old_failed, orphan_old], "kept": [shared, recent, orphan_new]}


def test_purge_removes_seeds_of_runs_ended_long_ago_and_old_orphans(seeds):
    out = StringIO()
    call_command("purge_seeds", stdout=out)
    for spec in seeds["gone"]:
        assert not default_storage.exists(spec["storage"]), spec
    for spec in seeds["kept"]:
        assert default_storage.exists(spec["storage"]), spec
    assert "removed 3" in out.getvalue()


def test_purge_dry_run_removes_nothing(seeds):
    out = StringIO()
    call_command("purge_seeds", "--dry-run", stdout=out)
    for spec in seeds["gone"] + seeds["kept"]:
        assert default_storage.exists(spec["storage"])
    assert "would remove 3" in out.getvalue()


def test_purge_days_flag(seeds):
    call_command("purge_seeds", "--days", "50", stdout=StringIO())
    assert default_storage.exists(seeds["gone"][0]["storage"])  # ended 40 days ago: within 50
