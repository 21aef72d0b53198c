"""Size and aspect filters: SceneImg's by default; switched off with 0, the original crawler kept every size."""
import io

import pytest
from django.core.management import call_command

from crawl.ingest import Filters
from tests.images import encode, photo_like

pytestmark = pytest.mark.django_db


def last_line(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


@pytest.fixture
def odd_sizes(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "tiny.jpg").write_bytes(encode(photo_like(120, 80, 1), "JPEG"))
    (folder / "panorama.jpg").write_bytes(encode(photo_like(1500, 150, 2), "JPEG"))
    (folder / "room.jpg").write_bytes(encode(photo_like(640, 480, 3), "JPEG"))
    return folder


def test_sceneimg_filters_apply_by_default(odd_sizes):
    assert last_line("import_folder", str(odd_sizes)) == "stored 1, duplicate 0, invalid 2, error 0"


def test_zero_switches_the_filters_off_as_the_original_crawler(odd_sizes):
    line = last_line("import_folder", str(odd_sizes), "--min-width", "0", "--min-height", "0", "--max-aspect", "0")
    assert line == "stored 3, duplicate 0, invalid 0, error 0"


def test_the_original_constants_can_be_asked_for():
    # crawler.py's MIN_DIMENSION 400 and aspect 0.4 to 2.5 (its check was switched off in the end).
    f = Filters.from_params({"min_width": 400, "min_height": 400, "max_aspect": 2.5})
    assert f.reject_reason(399, 600) and f.reject_reason(1100, 400) and not f.reject_reason(1000, 400)
    relaxed = Filters.from_params({"min_width": 0, "min_height": 0, "max_aspect": 0}, debug=True)
    assert relaxed.reject_reason(1, 1000) is None
