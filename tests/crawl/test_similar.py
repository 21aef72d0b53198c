"""Reverse-image expansion against the loopback Baidu: upload, result-page states, paging, dHash window."""
import io

import pytest
from PIL import Image as PILImage

from crawl import baidu_similar as similar
from crawl.ingest import Sighting, compute_dhash, ingest_bytes
from crawl.models import Source
from curation import runs
from curation.models import Image, Run
from tests.fakes.baidu import jpeg, picture, serve_for_test

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_baidu(settings):
    yield from serve_for_test(settings)


@pytest.fixture
def seed_dir(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    for i in range(2):
        (folder / f"seed-{i}.jpg").write_bytes(jpeg(picture(500 + i)))
    (folder / "notes.txt").write_text("not a seed")
    return folder


def expand(seeds, **kw):
    kw.setdefault("limit_per_seed", 100)
    return runs.run_in_foreground("similar", lambda t: similar.expand_seeds(t, seeds, **kw), {})


def distance_of(fake, session_id, k, seed_hash):
    im = PILImage.open(io.BytesIO(fake.similar_bytes(session_id, k)))
    return similar.hamming(seed_hash, compute_dhash(im))


def test_window_keeps_exactly_the_candidates_inside_it(fake_baidu, seed_dir):
    fake_baidu.similar_total = 20
    specs = similar.seed_specs_from_dir(seed_dir, "seed-0.jpg")
    run = expand(specs, dhash_min_distance=4, dhash_threshold=18, batch_size=4)
    assert run.status == Run.Status.DONE, run.error
    (session_id,) = fake_baidu.sessions
    seed_hash = compute_dhash(PILImage.open(seed_dir / "seed-0.jpg"))
    distances = {k: distance_of(fake_baidu, session_id, k, seed_hash) for k in range(20)}
    expected_kept = {k for k, d in distances.items() if 4 < d <= 18}  # the original's window
    # the fake's plan makes all three cases real: copies, near variants and unrelated pictures
    assert any(d <= 4 for d in distances.values()) and any(d > 18 for d in distances.values()) and expected_kept
    sources = {s.rank - 1: s for s in Source.objects.filter(run=run)}
    assert len(sources) == 20
    kept = {k for k, s in sources.items() if s.outcome == "stored"}
    assert kept == expected_kept
    for k, s in sources.items():
        assert s.seed_name == "seed-0.jpg" and s.provider == "baidu_similar"
        assert s.extra["seed_distance"] == distances[k]
        if distances[k] <= 4:
            assert s.outcome == "invalid" and s.reason.startswith("copy of the seed")
        elif distances[k] > 18:
            assert s.outcome == "invalid" and s.reason.startswith("not similar to the seed")
    assert Image.objects.count() == len(expected_kept)


def test_no_phash_keeps_everything(fake_baidu, seed_dir):
    fake_baidu.similar_total = 10
    run = expand(similar.seed_specs_from_dir(seed_dir, "seed-0.jpg"), use_dhash=False)
    # copies of the seed re-encoded at the same quality are one Image; everything else is stored
    assert run.counters.get("invalid", 0) == 0
    assert run.counters["stored"] + run.counters.get("duplicate", 0) == 10


def test_upload_sends_acs_token_and_multipart(fake_baidu, seed_dir):
    fake_baidu.similar_total = 3
    expand(similar.seed_specs_from_dir(seed_dir, "seed-0.jpg"))
    method, path, headers = [r for r in fake_baidu.requests if r[0] == "POST"][0]
    assert path.startswith("/upload?uptime=") and headers["Acs-Token"]
    assert headers["Content-Type"].startswith("multipart/form-data")


def test_upload_without_token_is_refused_and_named(fake_baidu, seed_dir, settings, monkeypatch):
    monkeypatch.setattr(similar.GraphClient, "acs_token", lambda self: None)  # requests drops None headers
    with pytest.raises(similar.SimilarError, match="系统异常"):
        expand(similar.seed_specs_from_dir(seed_dir, "seed-0.jpg"))
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED
    assert "Baidu refused the upload of seed-0.jpg: status 2 系统异常" in run.error


@pytest.mark.parametrize("state_mode", ["carddata", "preloaded", "preloaded_b64"])
def test_every_result_page_state_is_followed(fake_baidu, seed_dir, state_mode):
    fake_baidu.state_mode = state_mode
    fake_baidu.similar_total = 7
    run = expand(similar.seed_specs_from_dir(seed_dir, "seed-1.jpg"), use_dhash=False)
    assert Source.objects.filter(run=run).count() == 7


def test_paging_until_the_limit_and_until_the_end(fake_baidu, seed_dir):
    fake_baidu.similar_total = 75
    run = expand(similar.seed_specs_from_dir(seed_dir, "seed-0.jpg"), limit_per_seed=40, use_dhash=False)
    # The limit counts stored images, as the original counted saved ones: the seed's copies do not count.
    assert Source.objects.filter(run=run, outcome="stored").count() == 40
    assert Source.objects.filter(run=run, outcome="duplicate").exists()
    assert fake_baidu.hits["pcsimi"] == 2
    pages = [p for m, p, h in fake_baidu.requests if p.startswith("/ajax/pcsimi")]
    assert "page=1" in pages[0] and "page=2" in pages[1] and "next=3" in pages[1]
    fake_baidu.hits.clear()
    run = expand(similar.seed_specs_from_dir(seed_dir, "seed-1.jpg"), limit_per_seed=500, use_dhash=False)
    assert Source.objects.filter(run=run).count() == 75
    assert fake_baidu.hits["pcsimi"] == 3  # 30 + 30 + 15: the short page is the end
    assert run.total == 75


@pytest.mark.parametrize("mode,counter", [("noresult", "_seeds_noresult"), ("same_only", "_seeds_same_only")])
def test_noresult_and_same_only_pages_end_quietly(fake_baidu, seed_dir, mode, counter):
    fake_baidu.result_mode = mode
    run = expand(similar.seed_specs_from_dir(seed_dir))
    assert run.status == Run.Status.DONE
    assert run.counters[counter] == 2
    assert Source.objects.count() == 0 and fake_baidu.hits["pcsimi"] == 0


def test_seed_by_image_id_is_recorded_on_sources(fake_baidu):
    fake_baidu.similar_total = 5
    seed = ingest_bytes(jpeg(picture(777)), Sighting(provider="upload")).image
    run = expand([{"image_id": seed.pk}], use_dhash=False)
    sources = Source.objects.filter(run=run)
    assert sources.count() == 5
    assert set(sources.values_list("seed_image_id", flat=True)) == {seed.pk}


def test_dedup_skips_known_urls_and_no_dedup_fetches_again(fake_baidu, seed_dir):
    fake_baidu.similar_total = 6
    specs = similar.seed_specs_from_dir(seed_dir, "seed-0.jpg")
    first = expand(specs, use_dhash=False)
    images = Image.objects.count()
    fetched = fake_baidu.hits["similar_image"]
    assert first.status == Run.Status.DONE and fetched == 6
    fake_baidu.sessions = {}  # the same upload then gets the same session, so the same candidate URLs
    again = expand(specs, use_dhash=False)
    assert again.counters == {"duplicate": 6, "_seeds_done": 1}
    assert fake_baidu.hits["similar_image"] == fetched  # known URLs are not fetched again
    fake_baidu.sessions = {}
    no_dedup = expand(specs, use_dhash=False, dedup=False)
    assert fake_baidu.hits["similar_image"] == fetched + 6
    assert no_dedup.counters.get("stored", 0) == 0  # never a second Image for one sha256
    assert Image.objects.count() == images


def test_one_failing_seed_does_not_stop_the_others(fake_baidu, seed_dir):
    fake_baidu.similar_total = 4
    (seed_dir / "broken.jpg").write_bytes(b"not an image at all")
    run = expand(similar.seed_specs_from_dir(seed_dir), use_dhash=False, max_concurrent=2)
    assert run.status == Run.Status.DONE
    assert "broken.jpg is not a usable image" in run.error
    assert run.counters["_seeds_failed"] == 1 and run.counters["_seeds_done"] == 2
    assert Source.objects.filter(run=run).count() == 8


def test_uploaded_seed_lives_in_storage():
    spec = similar.store_seed_upload("my seed.png", jpeg(picture(3)))
    name, data, image, seed_hash = similar.load_seed(spec)
    assert name == "my seed.png" and image is None and data == jpeg(picture(3))
    assert spec["storage"].startswith("seeds/")


def test_page_url_rewrites_page_and_next():
    url = similar.page_url("http://g/ajax/pcsimi?limit=30&next=2&session_id=s&page=1&tk=x", 3)
    assert "page=3" in url and "next=4" in url and "session_id=s" in url and url.count("page=") == 1


def test_a_sideways_seed_is_hashed_upright_like_the_candidates(tmp_path):
    from tests.images import encode, photo_like

    upright = photo_like(400, 600, 77)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # stored rotated; shown upright
    sideways = upright.rotate(90, expand=True)
    seed = tmp_path / "seed.jpg"
    seed.write_bytes(encode(sideways, "JPEG", quality=95, exif=exif.tobytes()))
    _name, _data, _image, seed_hash = similar.load_seed({"path": str(seed)})
    candidate_hash = compute_dhash(PILImage.open(io.BytesIO(encode(upright, "JPEG", quality=95))))
    assert similar.hamming(seed_hash, candidate_hash) <= 2
