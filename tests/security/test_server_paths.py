"""Server folders named in the web forms (folder import, a crawl's --output) must lie under the
configured roots, judged after following symlinks; the command line may name any folder."""
import os

import pytest
from django.core.management import call_command

from crawl.forms import FolderImportForm, KeywordCrawlForm, SimilarForm
from curation.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def roots(settings, tmp_path):
    imports, outputs = tmp_path / "imports", tmp_path / "outputs"
    (imports / "shots").mkdir(parents=True)
    outputs.mkdir()
    settings.SCENEIMG_IMPORT_ROOTS = [str(imports)]
    settings.SCENEIMG_OUTPUT_ROOTS = [str(outputs)]
    return imports, outputs


def folder_form(path):
    return FolderImportForm({"path": str(path)})


def crawl_form(output):
    return KeywordCrawlForm({"queries": "kitchen", "limit_per_query": 10, "batch_size": 5, "output": str(output)})


@pytest.mark.parametrize("path", ["/etc", "/root", "/proc/self", "/", "/proc/self/root/etc"])
def test_system_folders_are_refused(roots, path):
    form = folder_form(path)
    assert not form.is_valid()
    assert "import roots" in str(form.errors["path"])


def test_a_folder_under_a_root_is_accepted(roots):
    imports, _ = roots
    form = folder_form(imports / "shots")
    assert form.is_valid(), form.errors
    assert form.cleaned_data["path"] == str((imports / "shots").resolve())


def test_dotdot_out_of_a_root_is_refused(roots, tmp_path):
    imports, _ = roots
    (tmp_path / "secret").mkdir()
    assert not folder_form(f"{imports}/shots/../../secret").is_valid()


def test_a_symlink_out_of_a_root_is_refused(roots, tmp_path):
    imports, _ = roots
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", imports / "link")
    assert not folder_form(imports / "link").is_valid()
    os.symlink("/etc", imports / "etc")
    assert not folder_form(imports / "etc").is_valid()


def test_a_missing_folder_outside_the_roots_reads_like_any_refusal(roots):
    """Whether a path outside the roots exists is not told."""
    missing = folder_form("/no/such/folder").errors["path"][0]
    existing = folder_form("/etc").errors["path"][0]
    assert missing.replace("/no/such/folder", "X") == existing.replace("/etc", "X")


@pytest.mark.parametrize("output", ["/etc/cron.d", "/root/.ssh", "/tmp", "relative/folder"])
def test_crawl_output_outside_the_roots_is_refused(roots, output):
    form = crawl_form(output)
    assert not form.is_valid()
    assert "output" in form.errors


def test_crawl_output_under_a_root_may_not_exist_yet(roots):
    _, outputs = roots
    form = crawl_form(outputs / "new" / "sub")
    assert form.is_valid(), form.errors
    assert form.params()["output"] == str(outputs / "new" / "sub")


def test_crawl_output_through_a_symlink_is_judged_by_its_target(roots, tmp_path):
    _, outputs = roots
    os.symlink("/etc", outputs / "etc")
    assert not crawl_form(outputs / "etc" / "cron.d").is_valid()


def test_similar_output_is_checked_too(roots, tmp_path):
    from tests.factories import image_row

    image_row(1)
    form = SimilarForm({"seed_image_ids": "1", "limit_per_seed": 5, "batch_size": 4, "max_concurrent": 1,
                        "dhash_threshold": 18, "dhash_min_distance": 4, "output": "/etc"})
    assert not form.is_valid() and "output" in form.errors


def test_the_web_launch_refuses_and_launches_nothing(client, launcher, roots):
    client.force_login(launcher)
    response = client.post("/runs/launch/import_folder/", {"import_folder-path": "/etc"}, follow=True)
    assert "import roots" in response.content.decode()
    assert not Run.objects.exists()


def test_without_configured_roots_nothing_outside_var_is_allowed(settings, tmp_path):
    settings.SCENEIMG_IMPORT_ROOTS = []
    settings.VAR_DIR = tmp_path / "var"
    (tmp_path / "var" / "import" / "a").mkdir(parents=True)
    assert folder_form(tmp_path / "var" / "import" / "a").is_valid()
    assert not folder_form(tmp_path).is_valid()


def test_the_command_line_may_import_any_folder(roots, tmp_path, redis_conn):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    call_command("import_folder", str(elsewhere), "--enqueue")
    assert Run.objects.get().params["path"] == str(elsewhere.resolve())
