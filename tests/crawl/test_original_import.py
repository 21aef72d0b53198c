"""Importing folders laid out exactly as the original scripts wrote them, then crawling the same results.

The folders are generated here from the original's formats (crawler.py, search_by_images.py and
filter_basic.py): `<root>/<sanitized query>/<sha1>.jpg` re-encoded at JPEG quality 90, a sidecar
`<sha1>.json` with source, sha1, content_type, status, final_url, width, height and format, and one
`_global_index.jsonl` line per file at the root (sha1, url_md5, url, path, timestamp).
"""
import hashlib
import io
import json
import time

import pytest
from django.core.management import call_command
from PIL import Image as PILImage

from crawl.models import Source
from curation.models import Image
from tests.fakes.baidu import jpeg, picture, serve_for_test, thumb_bytes

QUERY = "客厅 室内 生活 气息 真实"  # one of crawler.py's built-in queries
QUERY_FOLDER = "客厅-室内-生活-气息-真实"  # its folder, as in the original's clip_filter_log.csv


@pytest.fixture
def fake_baidu(settings):
    yield from serve_for_test(settings)


def original_save(blob):
    """What the original's should_keep_and_normalize wrote for a JPEG download: (bytes, sha1)."""
    with PILImage.open(io.BytesIO(blob)) as im:
        out = io.BytesIO()
        im.convert("RGB").save(out, "JPEG", quality=90)
    data = out.getvalue()
    return data, hashlib.sha1(data).hexdigest()


def write_original_file(root, folder, url, blob, *, keyword=True, relative_to=None):
    data, sha1 = original_save(blob)
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{sha1}.jpg").write_bytes(data)
    with PILImage.open(io.BytesIO(data)) as im:
        width, height = im.size
    meta = {"source": url, "sha1": sha1}
    if keyword:
        meta.update({"content_type": "image/jpeg", "status": 200, "final_url": url})
    meta.update({"width": width, "height": height, "format": "JPEG"})
    (target / f"{sha1}.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    index_root = relative_to or root
    entry = {"sha1": sha1, "url_md5": hashlib.md5(url.encode()).hexdigest(), "url": url,
             "path": str((target / f"{sha1}.jpg").relative_to(index_root)), "timestamp": time.time()}
    with (index_root / "_global_index.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return sha1


def last_line(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


@pytest.mark.django_db(transaction=True)
def test_an_original_crawl_folder_imports_its_urls_and_a_crawl_of_the_same_results_fetches_nothing(
        fake_baidu, tmp_path):
    ids = list(range(5100, 5106))
    fake_baidu.queries = {QUERY: ids}
    root = tmp_path / "crawledimg" / "baidu" / "raw"
    # crawler.py saved hoverURL, the first web address of an acjson item: Baidu's thumbnail.
    sha1s = {write_original_file(root, QUERY_FOLDER, fake_baidu.thumb_url(i), thumb_bytes(i)): i for i in ids}

    assert last_line("import_folder", str(root)) == "stored 6, duplicate 0, invalid 0, error 0"
    for src in Source.objects.all():
        meta = src.extra["metadata"]
        image_id = sha1s[meta["sha1"]]
        assert (src.provider, src.query, src.url) == ("baidu", QUERY, fake_baidu.thumb_url(image_id))
        assert meta["url_md5"] == hashlib.md5(src.url.encode()).hexdigest()
        assert (meta["status"], meta["content_type"], meta["format"]) == (200, "image/jpeg", "JPEG")
        assert meta["final_url"] == src.url and src.extra["folder"] == QUERY_FOLDER

    fake_baidu.hits.clear()
    line = last_line("crawl_baidu", "-q", QUERY, "--limit-per-query", "6")
    assert line.startswith("stored 0, duplicate 6,")
    downloads = sum(fake_baidu.hits[r] for r in ("original", "thumb", "mirror", "gimg2"))
    assert downloads == 0 and Image.objects.count() == 6
    imported = dict(Source.objects.filter(outcome="stored").values_list("url", "image_id"))
    for dup in Source.objects.filter(outcome="duplicate"):
        thumb = fake_baidu.thumb_url(int(dup.url.rsplit("/", 1)[1].split(".")[0]))
        assert dup.image_id == imported[thumb] and dup.reason.endswith(f"as {thumb}")


@pytest.mark.django_db
def test_an_original_reverse_image_folder_with_timestamp_subfolders(tmp_path):
    root = tmp_path / "crawledimg" / "search_by_images" / "baidu"
    urls = [f"https://mms0.baidu.com/it/u={n},1&fm=253" for n in range(3)]
    for n, url in enumerate(urls):
        write_original_file(root, "my-seed_01/20250101-120000", url, jpeg(picture(300 + n)), keyword=False)
    # Importing only one seed's folder still finds the index at the root above it.
    assert last_line("import_folder", str(root / "my-seed_01"), "--recursive").startswith("stored 3,")
    sources = list(Source.objects.order_by("id"))
    assert {(s.provider, s.seed_name) for s in sources} == {("baidu_similar", "my-seed_01")}
    assert sorted(s.url for s in sources) == urls
    assert all(s.extra["metadata"]["_index"] == "_global_index.jsonl" for s in sources)


@pytest.mark.django_db
def test_a_filter_basic_folder_finds_urls_through_the_crawled_originals(tmp_path):
    project = tmp_path / "project"
    raw = project / "crawledimg" / "baidu" / "raw"
    kept = project / "filteredimg" / "baidu" / "auto"
    kept.mkdir(parents=True)
    url = "https://img1.baidu.com/it/u=42,7&fm=253&fmt=auto"
    sha1 = write_original_file(raw, QUERY_FOLDER, url, jpeg(picture(400)))
    # filter_basic.py copied the file flat and logged its input path as run from the project root.
    (kept / f"{sha1}.jpg").write_bytes((raw / QUERY_FOLDER / f"{sha1}.jpg").read_bytes())
    (kept / "_filtered_index.jsonl").write_text(json.dumps({
        "sha1": sha1, "source": f"crawledimg/baidu/raw/{QUERY_FOLDER}/{sha1}.jpg", "target": f"{sha1}.jpg",
        "timestamp": time.time()}, ensure_ascii=False) + "\n")
    assert last_line("import_folder", str(kept)).startswith("stored 1,")
    src = Source.objects.get()
    assert (src.provider, src.query, src.url) == ("baidu", QUERY, url)
    assert src.extra["metadata"]["filter_source"].endswith(f"{sha1}.jpg")
