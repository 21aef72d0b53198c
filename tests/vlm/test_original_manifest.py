"""filter_vlm --input-manifest in the original filter_vlm.py's formats: the caller's `id` is an identifier,
never a database id, and the output files keep the original's fields and shapes."""
import hashlib
import json

import pytest
from django.core.management import call_command

from curation.models import Image
from tests.conftest import encode, photo_like
from vlm.models import VlmVerdict

pytestmark = pytest.mark.django_db


def filter_vlm(capsys, *args):
    call_command("filter_vlm", *map(str, args))
    return capsys.readouterr().out


def write_photo(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode(photo_like(480, 360, seed), "JPEG", quality=88)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def judged_shas():
    return set(VlmVerdict.objects.values_list("image__sha256", flat=True))


def test_caller_ids_that_look_like_database_ids_judge_the_files_they_name(prompts, openai_fake, make_images,
                                                                         tmp_path, capsys):
    stored = make_images(3)  # images whose database ids the caller's ids collide with
    a = write_photo(tmp_path / "cands" / "a.jpg", 101)
    b = write_photo(tmp_path / "cands" / "b.jpg", 102)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([
        {"id": str(stored[0].pk), "image_path": str(tmp_path / "cands" / "a.jpg"), "room": "kitchen"},
        {"id": str(stored[1].pk), "image": "cands/b.jpg"},  # relative to the manifest's folder
        {"id": str(stored[2].pk), "path": str(tmp_path / "cands" / "missing.jpg")},
    ]))
    out = tmp_path / "res.jsonl"
    filter_vlm(capsys, "--input-manifest", manifest, "-o", out)

    assert judged_shas() == {a, b}  # the stored images with those ids were not judged in their place
    lines = read_jsonl(out)
    assert [line["id"] for line in lines] == [str(stored[0].pk), str(stored[1].pk)]
    assert [line["image_path"] for line in lines] == [str(tmp_path / "cands" / "a.jpg"), "cands/b.jpg"]
    assert [line["sha256"] for line in lines] == [a, b]
    original_fields = ["id", "image_path", "decision", "score", "reason", "room_tags", "object_tags", "raw_response"]
    assert list(lines[0])[:8] == original_fields
    assert lines[0]["raw_response"]["decision"] == lines[0]["decision"]
    errors = json.loads((tmp_path / "res.errors.json").read_text())
    assert errors["count"] == 1
    assert list(errors["errors"]) == [str(stored[2].pk)] and "cannot read" in errors["errors"][str(stored[2].pk)]


def test_the_original_mapping_and_database_ids_only_under_image_id(prompts, openai_fake, make_images, tmp_path,
                                                                 capsys):
    stored = make_images(2)
    c = write_photo(tmp_path / "c.jpg", 103)
    manifest = tmp_path / "mapping.json"
    manifest.write_text(json.dumps({
        "kitchen-01": {"image_path": str(tmp_path / "c.jpg")},
        "kitchen-02": str(tmp_path / "c.jpg"),  # the mapping's short form: id -> path
        "by-db-id": {"image_id": stored[1].pk},
        str(stored[0].pk): {"note": "names no file and no image"},
        "gone": {"image_id": 999999},
    }))
    out = tmp_path / "m.jsonl"
    filter_vlm(capsys, "--input-manifest", manifest, "--output", out)

    assert judged_shas() == {c, stored[1].sha256}
    lines = read_jsonl(out)
    assert [line["id"] for line in lines] == ["by-db-id", "kitchen-01", "kitchen-02"]  # sorted, as the original
    assert lines[1]["sha256"] == lines[2]["sha256"] == c
    errors = json.loads((tmp_path / "m.errors.json").read_text())
    assert errors["count"] == 2 and set(errors["errors"]) == {str(stored[0].pk), "gone"}
    assert errors["errors"]["gone"] == "no such image"
    assert Image.objects.count() == 3  # nothing else was ingested or judged instead


@pytest.mark.parametrize("name", ["one.jsonl", "one.json"])
def test_one_line_jsonl(prompts, openai_fake, tmp_path, capsys, name):
    d = write_photo(tmp_path / "d.png", 104)
    manifest = tmp_path / name
    manifest.write_text(json.dumps({"id": "solo", "image_path": str(tmp_path / "d.png")}) + "\n")
    out = tmp_path / "one.out.jsonl"
    filter_vlm(capsys, "--input-manifest", manifest, "-o", out)
    [line] = read_jsonl(out)
    assert line["id"] == "solo" and line["image_path"] == str(tmp_path / "d.png")
    assert VlmVerdict.objects.count() == 1
    assert json.loads((tmp_path / "one.out.errors.json").read_text()) == {"count": 0, "errors": {}, "details": []}
    assert d  # the file was read


def test_an_entry_without_a_file_or_image_id_is_listed_not_fatal(prompts, openai_fake, tmp_path, capsys):
    write_photo(tmp_path / "e.jpg", 105)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"id": "ok", "image_path": str(tmp_path / "e.jpg")}),
        json.dumps({"id": "bare"}),
        json.dumps(7),  # a bare number is not taken for a database id
    ]) + "\n")
    out = tmp_path / "m.out.jsonl"
    filter_vlm(capsys, "--input-manifest", manifest, "-o", out)
    assert [line["id"] for line in read_jsonl(out)] == ["ok"]
    errors = json.loads((tmp_path / "m.out.errors.json").read_text())
    assert errors["count"] == 2 and set(errors["errors"]) == {"bare", "row-00002"}
    assert VlmVerdict.objects.count() == 1


def test_short_flags_and_the_ollama_url_flag(prompts, ollama_fake, tmp_path, capsys, settings):
    write_photo(tmp_path / "in" / "kitchen_01.jpg", 106)
    settings.SCENEIMG_OLLAMA_HOST = "http://127.0.0.1:9"  # nothing listens there: the flag must win
    out = tmp_path / "r.jsonl"
    filter_vlm(capsys, "-i", tmp_path / "in", "-o", out, "--backend", "ollama-local", "--model", "llava:latest",
               "--ollama-url", ollama_fake.base_url)
    [line] = read_jsonl(out)
    assert line["id"] == "kitchen_01" and line["backend"] == "ollama-local"  # a file's id is its stem
    assert len(ollama_fake.requests) == 1
