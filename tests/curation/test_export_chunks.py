"""An export larger than one chunk holds exactly the selection: every image, its bytes, one row each."""
import csv
import io
import json
import zipfile

import pytest

from curation import export
from curation.runs import Tracker
from tests.factories import stored_data, stored_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def selection(monkeypatch, settings, tmp_path):
    monkeypatch.setattr(export, "CHUNK", 3)
    images = [stored_image(seed, width=64, height=48, fmt="PNG" if seed % 4 == 0 else "JPEG",
                           auto_decision="reject" if seed % 3 == 1 else "keep")
              for seed in range(11)]
    kept = [img for img in images if img.final_decision == "keep"]
    assert len(kept) > 2 * export.CHUNK  # three chunks, the last one partial
    return kept


def read_export(out, fmt):
    """{archive name: bytes} of everything the export wrote, zip or folder."""
    if fmt == "zip":
        with zipfile.ZipFile(out) as zf:
            return {name: zf.read(name) for name in zf.namelist()}
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.mark.parametrize("fmt", ["zip", "folder"])
def test_export_over_several_chunks_matches_the_selection(selection, tmp_path, fmt):
    out = tmp_path / ("set.zip" if fmt == "zip" else "set")
    tracker = Tracker()
    export.export(tracker, "final=keep", out, fmt)
    files = read_export(out, fmt)
    want = {export.archive_name(img): stored_data(img) for img in selection}
    assert {name for name in files if name.startswith(export.IMAGES_DIR + "/")} == set(want)
    for name, data in want.items():
        assert files[name] == data, name
    rows = [json.loads(line) for line in files[export.METADATA_NAME].decode().splitlines()]
    assert [(r["image_id"], r["file_name"]) for r in rows] == \
        [(img.pk, export.archive_name(img)) for img in selection]
    table = list(csv.reader(io.StringIO(files[export.CSV_NAME].decode())))
    assert [int(r[1]) for r in table[1:]] == [img.pk for img in selection]
    assert tracker.counts["exported"] == len(selection) and "missing" not in tracker.counts
