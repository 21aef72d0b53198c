"""remove_seed_duplicates: copies of seeds are rejected (files kept), exported copies removed; dry run changes nothing."""
import json

import pytest
from django.core.management import call_command

from crawl.ingest import Sighting, ingest_bytes
from curation.models import Image
from tests.fakes.baidu import jpeg, near_variant, picture

pytestmark = pytest.mark.django_db


@pytest.fixture
def layout(tmp_path):
    seed_dir, out = tmp_path / "seed", tmp_path / "out" / "seed-a"
    seed_dir.mkdir()
    out.mkdir(parents=True)
    seed = picture(11)
    (seed_dir / "seed-a.jpg").write_bytes(jpeg(seed))
    # What the expansion of seed-a.jpg found (each seed is compared with its own expansion).
    found = Sighting(provider="baidu_similar", seed_name="seed-a.jpg")
    copy = ingest_bytes(jpeg(seed, quality=70), found).image  # the seed again
    near = ingest_bytes(jpeg(near_variant(seed, 1)), found).image
    other = ingest_bytes(jpeg(picture(12)), found).image
    own = ingest_bytes(jpeg(seed), Sighting(provider="folder")).image  # the seed file itself
    for name, data in (("copy", jpeg(seed, quality=75)), ("other", jpeg(picture(12)))):
        (out / f"{name}.jpg").write_bytes(data)
        (out / f"{name}.json").write_text(json.dumps({"url": name}))
    return seed_dir, out, copy, near, other, own


def test_dry_run_changes_nothing(layout, capsys):
    seed_dir, out, copy, *_ = layout
    before = list(Image.objects.order_by("pk").values_list("pk", "auto_decision", "final_decision", "auto_reason"))
    call_command("remove_seed_duplicates", "--seed-dir", str(seed_dir), "--output-dir", str(out.parent),
                 "--dry-run")
    assert list(Image.objects.order_by("pk").values_list("pk", "auto_decision", "final_decision",
                                                        "auto_reason")) == before
    assert sorted(p.name for p in out.iterdir()) == ["copy.jpg", "copy.json", "other.jpg", "other.json"]
    printed = capsys.readouterr().out
    assert "dry run, nothing changed: would have rejected 1 of 1" in printed and "removed 1 files" in printed
    assert f"image #{copy.pk}: copy of seed seed-a.jpg" in printed


def test_copies_rejected_files_kept_exported_copies_removed(layout, capsys):
    seed_dir, out, copy, near, other, own = layout
    # Undecided before the command, so the rejection below is the command's doing.
    assert (copy.auto_decision, copy.final_decision) == (None, None)
    call_command("remove_seed_duplicates", "--seed-dir", str(seed_dir), "--output-dir", str(out.parent))
    copy.refresh_from_db()
    assert (copy.auto_decision, copy.final_decision, copy.auto_reason) == ("reject", "reject", "copy of seed seed-a.jpg")
    assert copy.file.storage.exists(copy.file.name)  # nothing silently deleted from storage
    for untouched in (near, other, own):
        untouched.refresh_from_db()
        assert not untouched.auto_reason.startswith("copy of seed")  # (near-dup grouping may judge them)
    assert sorted(p.name for p in out.iterdir()) == ["other.jpg", "other.json"]
    assert "rejected 1 of 1 images within dHash 2 of 1 seeds" in capsys.readouterr().out


def test_human_decision_wins_and_threshold_widens(layout):
    seed_dir, out, copy, near, *_ = layout
    Image.objects.filter(pk=copy.pk).update(human_decision="keep", final_decision="keep")
    call_command("remove_seed_duplicates", "--seed-dir", str(seed_dir), "--threshold", "30")
    copy.refresh_from_db()
    near.refresh_from_db()
    assert copy.final_decision == "keep" and copy.auto_decision == "reject"
    assert near.final_decision == "reject"


def test_missing_seed_dir_is_a_clear_error(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="does not exist"):
        call_command("remove_seed_duplicates", "--seed-dir", str(tmp_path / "nope"))
