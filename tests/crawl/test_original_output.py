"""--output folders are written in the original scripts' layout, so their tools keep working on them."""
import hashlib
import io
import json

import pytest
from django.core.management import call_command

from crawl.models import Source
from curation.models import Image
from tests.fakes.baidu import jpeg, picture, serve_for_test

pytestmark = pytest.mark.django_db(transaction=True)

KEYWORD_SIDECAR = ["source", "sha1", "content_type", "status", "final_url", "width", "height", "format"]
SIMILAR_SIDECAR = ["source", "sha1", "width", "height", "format"]
INDEX_KEYS = ["sha1", "url_md5", "url", "path", "timestamp"]


@pytest.fixture
def fake_baidu(settings):
    yield from serve_for_test(settings)


def run(*args):
    call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())


def read_index(root):
    return [json.loads(line) for line in (root / "_global_index.jsonl").read_text(encoding="utf-8").splitlines()]


def test_a_keyword_crawl_writes_the_original_crawler_layout(fake_baidu, tmp_path):
    fake_baidu.queries = {"客厅 室内 生活 气息 真实": list(range(8100, 8105))}
    root = tmp_path / "raw"
    run("crawl_baidu", "-q", "客厅 室内 生活 气息 真实", "-n", "5", "-o", str(root))
    folder = root / "客厅-室内-生活-气息-真实"  # the original's folder name for this query
    files = sorted(folder.glob("*.jpg"))
    assert len(files) == 5
    index = read_index(root)
    assert [list(e) for e in index] == [INDEX_KEYS] * 5
    by_path = {e["path"]: e for e in index}
    for file in files:
        sha1 = hashlib.sha1(file.read_bytes()).hexdigest()
        assert file.stem == sha1
        side = json.loads(file.with_suffix(".json").read_text(encoding="utf-8"))
        assert list(side)[:8] == KEYWORD_SIDECAR
        assert (side["sha1"], side["status"], side["format"]) == (sha1, 200, "JPEG")
        assert side["content_type"].startswith("image/jpeg")
        entry = by_path[f"{folder.name}/{file.name}"]
        assert entry["sha1"] == sha1 and entry["url"] == side["source"]
        assert entry["url_md5"] == hashlib.md5(side["source"].encode()).hexdigest()
        assert Source.objects.get(url=side["source"], outcome="stored").image.sha256 == side["sha256"]


def test_a_written_folder_imports_back_with_every_url(fake_baidu, tmp_path):
    fake_baidu.queries = {"书房 室内 桌面 物品": list(range(8200, 8204))}
    root = tmp_path / "raw"
    run("crawl_baidu", "-q", "书房 室内 桌面 物品", "-n", "4", "-o", str(root))
    urls = set(Source.objects.filter(outcome="stored").values_list("url", flat=True))
    Source.objects.all().delete()
    Image.objects.all().delete()
    run("import_folder", str(root))
    assert set(Source.objects.values_list("url", flat=True)) == urls
    assert set(Source.objects.values_list("query", flat=True)) == {"书房 室内 桌面 物品"}


def test_a_reverse_image_search_writes_the_original_layout(fake_baidu, tmp_path):
    fake_baidu.similar_total = 10
    seeds = tmp_path / "seed"
    seeds.mkdir()
    (seeds / "My Room.jpg").write_bytes(jpeg(picture(91)))
    root = tmp_path / "baidu"
    run("search_by_images", "-i", str(seeds), "-n", "3", "-o", str(root), "-t", "--no-phash")
    [stamp] = [p for p in (root / "my-room").iterdir() if p.is_dir()]  # sanitized seed stem, then the timestamp
    files = sorted(stamp.glob("*.jpg"))
    assert len(files) == 3
    for file in files:
        side = json.loads(file.with_suffix(".json").read_text(encoding="utf-8"))
        assert list(side)[:5] == SIMILAR_SIDECAR and side["seed"] == "My Room.jpg"
    assert sorted(e["path"] for e in read_index(root)) == sorted(f"my-room/{stamp.name}/{f.name}" for f in files)
