"""Seeds, the dHash and its window as the original search_by_images.py and remove_seed_duplicates.py had them."""
import io
import json

import pytest
from django.core.management import call_command
from PIL import Image as PILImage
from PIL import ImageOps

from crawl import baidu_similar
from crawl.baidu_similar import Window
from crawl.ingest import Sighting, compute_dhash, ingest_bytes
from curation.models import Image
from tests.fakes.baidu import jpeg, near_variant, picture


def original_dhash(img, hash_size=8):
    """search_by_images.py's dhash(), written out as the original has it."""
    img = ImageOps.exif_transpose(img).convert("L").resize((hash_size + 1, hash_size), PILImage.LANCZOS)
    value = 0
    for y in range(hash_size):
        for x in range(hash_size):
            if img.getpixel((x, y)) > img.getpixel((x + 1, y)):
                value |= 1 << (y * hash_size + x)
    return value


@pytest.mark.parametrize("seed, size", [(1, (1600, 1200)), (2, (640, 480)), (3, (333, 999))])
def test_dhash_is_the_originals_on_the_full_image(seed, size):
    im = picture(seed, *size)
    assert compute_dhash(im) & (2**64 - 1) == original_dhash(im)
    rotated = PILImage.open(io.BytesIO(_with_orientation(picture(seed, *size), 6)))
    assert compute_dhash(rotated) & (2**64 - 1) == original_dhash(rotated)  # upright first, as the original


def _with_orientation(im, orientation):
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def test_the_window_drops_a_distance_equal_to_the_minimum_as_the_original():
    window = Window(0, 4, 18)
    assert window.reject_reason(0b1111).startswith("copy of the seed: dHash distance 4 <= 4")
    assert window.reject_reason(0b11111) is None
    assert window.reject_reason((1 << 18) - 1) is None
    assert window.reject_reason((1 << 19) - 1).startswith("not similar")


def test_seeds_in_subfolders_are_found_without_a_glob(tmp_path):
    (tmp_path / "kitchens" / "old").mkdir(parents=True)
    for rel in ("a.jpg", "kitchens/b.png", "kitchens/old/c.webp", "notes.txt"):
        (tmp_path / rel).write_bytes(b"x")
    names = [spec["name"] for spec in baidu_similar.seed_specs_from_dir(tmp_path)]
    assert names == ["a.jpg", "b.png", "c.webp"]
    assert [spec["name"] for spec in baidu_similar.seed_specs_from_dir(tmp_path, "*.jpg")] == ["a.jpg"]


@pytest.fixture
def two_seeds(tmp_path):
    seed_dir = tmp_path / "seed"
    (seed_dir / "sub").mkdir(parents=True)
    a, b = picture(21), picture(22)
    (seed_dir / "Seed A.jpg").write_bytes(jpeg(a))
    (seed_dir / "sub" / "seed-b.jpg").write_bytes(jpeg(b))  # a seed in a subfolder, as the original found it
    return seed_dir, a, b


@pytest.mark.django_db
def test_each_seed_is_compared_with_its_own_expansion_unless_everywhere(two_seeds, tmp_path):
    seed_dir, a, b = two_seeds
    own = ingest_bytes(jpeg(a, quality=70), Sighting(provider="baidu_similar", seed_name="Seed A.jpg")).image
    # A copy of seed A that seed B's expansion found: the original only looked in each seed's own folder.
    elsewhere = ingest_bytes(jpeg(a, quality=60), Sighting(provider="baidu_similar", seed_name="seed-b.jpg")).image
    # A copy of seed B from an imported original folder, which names the seed by its folder.
    imported = ingest_bytes(jpeg(b, quality=65), Sighting(provider="baidu_similar", seed_name="seed-b")).image
    call_command("remove_seed_duplicates", "--seed-dir", str(seed_dir), "--threshold", "4", stdout=io.StringIO())
    decided = dict(Image.objects.values_list("pk", "auto_reason"))
    assert decided[own.pk] == "copy of seed Seed A.jpg" and decided[imported.pk] == "copy of seed seed-b.jpg"
    assert not decided[elsewhere.pk].startswith("copy of seed")
    call_command("remove_seed_duplicates", "--seed-dir", str(seed_dir), "--threshold", "4", "--everywhere",
                 stdout=io.StringIO())
    assert Image.objects.get(pk=elsewhere.pk).auto_reason == "copy of seed Seed A.jpg"


@pytest.mark.django_db
def test_an_output_folder_is_cleaned_per_seed_subfolder(two_seeds, tmp_path):
    seed_dir, a, b = two_seeds
    out = tmp_path / "baidu"
    for folder, name, data in (("seed-a/20250101-000000", "x.jpg", jpeg(a, quality=70)),  # its own: removed
                               ("seed-b", "y.jpg", jpeg(a, quality=70)),  # seed A's copy under seed B: kept
                               ("seed-b", "z.jpg", jpeg(near_variant(b, 2)))):  # too far: kept
        (out / folder).mkdir(parents=True, exist_ok=True)
        (out / folder / name).write_bytes(data)
        (out / folder / name).with_suffix(".json").write_text(json.dumps({"source": "u"}))
    call_command("remove_seed_duplicates", "--seed-dir", str(seed_dir), "--output-dir", str(out), "--threshold", "2",
                 stdout=io.StringIO())
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*.*"))
    assert left == ["seed-b/y.jpg", "seed-b/y.json", "seed-b/z.jpg", "seed-b/z.json"]
