"""`manage.py filter_vlm` end to end against the fakes: inputs, outputs, selection, reruns, --enqueue."""
import json
import shutil
import subprocess
import sys

import django_rq
import pytest
from django.core.management import CommandError, call_command
from rq import SimpleWorker

from curation.models import FilterScore, Image, Run
from sceneimg_site import queues
from tests.conftest import encode, photo_like
from vlm.models import VlmVerdict


def filter_vlm(capsys, *args):
    call_command("filter_vlm", *map(str, args))
    return capsys.readouterr().out


def copy_stored(images, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for n, image in enumerate(images):
        with image.file.storage.open(image.file.name, "rb") as src:
            (folder / f"scene_{n:03d}.jpg").write_bytes(src.read())


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_input_dir_known_new_and_broken_files(db, prompts, openai_fake, make_images, tmp_path, capsys):
    folder = tmp_path / "candidates"
    copy_stored(make_images(4), folder)
    (folder / "new_room.jpg").write_bytes(encode(photo_like(400, 300, 99), "JPEG"))  # not stored yet: ingested
    (folder / "broken.jpg").write_bytes(b"this is not an image")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "vlm.jsonl"
    text = filter_vlm(capsys, "--input-dir", folder, "--output", out, "--keep-dir", tmp_path / "k",
                      "--reject-dir", tmp_path / "r", "--workers", 3, "--seed", 1)
    assert "inputs: 6 files, 4 already stored, 1 ingested, 1 failed" in text
    assert "judging 5 images with openai/gpt-4.1, prompt v3" in text
    lines = read_jsonl(out)
    errors = json.loads((tmp_path / "vlm.errors.json").read_text())
    assert len(lines) == 5 and Image.objects.count() == 5
    assert [e["path"].rsplit("/", 1)[-1] for e in errors["details"]] == ["broken.jpg"]
    assert errors["errors"] == {"broken": errors["details"][0]["error"]}  # keyed by the file's stem
    assert {line["path"] for line in lines} == {"new_room.jpg"} | {f"scene_{n:03d}.jpg" for n in range(4)}
    assert all(line["prompt"] == "v3" and line["decision"] in ("keep", "reject") for line in lines)
    copied = sorted(p.name for p in (tmp_path / "k").iterdir()) + sorted(p.name for p in (tmp_path / "r").iterdir())
    assert sorted(copied) == sorted(line["path"] for line in lines)
    run = Run.objects.get(kind=Run.Kind.VLM)
    assert run.counters["input_errors"] == 1 and run.status == Run.Status.DONE
    assert f"run #{run.pk} done" in text


def test_manifest_json_and_jsonl_with_image_ids_and_paths(db, prompts, openai_fake, make_images, tmp_path, capsys):
    images = make_images(5)
    folder = tmp_path / "files"
    copy_stored(images[3:], folder)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"image_id": images[0].pk}), json.dumps({"image_id": str(images[1].pk)}),
        json.dumps({"path": "files/scene_000.jpg"}), json.dumps(str(folder / "scene_001.jpg")),
        json.dumps({"id": 999999}),
    ]) + "\n")
    out = tmp_path / "o.jsonl"
    filter_vlm(capsys, "--input-manifest", manifest, "--output", out)
    lines = read_jsonl(out)
    assert [line["id"] for line in lines] == ["row-00000", "row-00001", "row-00002", "row-00003"]
    assert [line["image_id"] for line in lines] == [images[0].pk, images[1].pk, images[3].pk, images[4].pk]
    errors = json.loads((tmp_path / "o.errors.json").read_text())
    assert errors["count"] == 1 and errors["errors"] == {"999999": "no image_path, image or path (nor image_id) "
                                                                    "in {'id': 999999}"}

    as_json = tmp_path / "m.json"
    as_json.write_text(json.dumps({"images": [{"image_id": images[2].pk}, {"image_id": images[0].pk}]}))
    openai_fake.requests.clear()
    filter_vlm(capsys, "--input-manifest", as_json, "--output", out)
    assert [line["image_id"] for line in read_jsonl(out)] == [images[2].pk, images[0].pk]
    assert len(openai_fake.requests) == 1  # images[0] was judged already


def test_selection_flags_limit_and_rerun(db, prompts, openai_fake, make_images, capsys):
    images = make_images(8)
    Image.objects.filter(pk__in=[i.pk for i in images[:5]]).update(final_decision="keep")
    FilterScore.objects.bulk_create([FilterScore(image=i, scorer_key="clip", indoor_margin=1, passed=n % 2 == 0)
                                     for n, i in enumerate(images)])
    text = filter_vlm(capsys, "--decision", "keep", "--passed-clip", "--limit", 2)
    assert "judging 2 images" in text
    assert list(VlmVerdict.objects.order_by("image_id").values_list("image_id", flat=True)) == [images[0].pk, images[2].pk]
    first = Run.objects.get()
    text = filter_vlm(capsys, "--run", first.pk, "--min-score", 0.0)
    assert "skipped (already judged) 2" in text and len(openai_fake.requests) == 2
    text = filter_vlm(capsys, "--decision", "any", "--prompt", "v1", "--model", "gpt-4.1-mini")
    assert "v1 is not the active prompt (v3)" in text and "judging 8 images" in text
    assert VlmVerdict.objects.filter(prompt_version__name="v1", model="gpt-4.1-mini").count() == 8


def test_failures_are_reported_and_a_rerun_retries_only_them(db, prompts, openai_fake, make_images, tmp_path,
                                                             capsys):
    make_images(6)
    openai_fake.script = ["server_error"] * 3 + ["nul_garbage"]  # first image: 3 attempts, all 500
    out = tmp_path / "o.jsonl"
    text = filter_vlm(capsys, "--decision", "any", "--output", out, "--workers", 1)
    assert "errors 2" in text and "run the same command again" in text
    errors = json.loads((tmp_path / "o.errors.json").read_text())
    assert [e["error"][:8] for e in errors["details"]] == ["HTTP 500", "no JSON "]
    assert errors["count"] == 2 and list(errors["errors"].values()) == [e["error"] for e in errors["details"]]
    assert "(after 3 attempts)" in errors["details"][0]["error"]
    openai_fake.requests.clear()
    text = filter_vlm(capsys, "--decision", "any", "--output", out)
    assert len(openai_fake.requests) == 2 and "skipped (already judged) 4" in text and "errors 0" in text
    assert len(read_jsonl(out)) == 6 and json.loads((tmp_path / "o.errors.json").read_text())["count"] == 0


def test_ollama_local_from_the_command(db, prompts, ollama_fake, make_images, capsys):
    make_images(3)
    text = filter_vlm(capsys, "--decision", "any", "--backend", "ollama-local", "--model", "llava:latest")
    assert "with ollama-local/llava:latest" in text and "estimated cost $0.0000" in text
    assert VlmVerdict.objects.filter(backend="ollama-local", error="").count() == 3


@pytest.mark.parametrize("args, message", [
    ([], "say what to judge"),
    (["--decision", "any", "--prompt", "v9"], "no prompt version named 'v9'"),
    (["--input-dir", "/nonexistent/dir"], "is not a folder"),
    (["--decision", "any", "--workers", "0"], "--workers must be >= 1"),
])
def test_bad_invocations_are_clear_errors(db, prompts, openai_fake, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("filter_vlm", *args)


def test_missing_api_key_is_a_clear_error(db, prompts, settings):
    settings.SCENEIMG_OPENAI_API_KEY = ""
    with pytest.raises(CommandError, match="OPENAI_API_KEY"):
        call_command("filter_vlm", "--decision", "any")


def test_enqueue_splits_into_jobs_and_the_last_one_writes_the_files(
        db, prompts, openai_fake, make_images, tmp_path, capsys, settings, redis_conn,
        django_capture_on_commit_callbacks):
    settings.SCENEIMG_VLM_BATCH_SIZE = 4
    images = make_images(10)
    out = tmp_path / "q.jsonl"
    with django_capture_on_commit_callbacks(execute=True):
        text = filter_vlm(capsys, "--decision", "any", "--output", out, "--keep-dir", tmp_path / "keep", "--enqueue")
    run = Run.objects.get()
    assert f"run #{run.pk}: 10 images in 3 job(s) on the 'vlm' queue" in text
    with django_capture_on_commit_callbacks(execute=True):
        again = filter_vlm(capsys, "--decision", "any", "--output", out, "--keep-dir", tmp_path / "keep", "--enqueue")
    assert f"already queued as run #{run.pk}" in again  # the same work is not enqueued twice
    queue = django_rq.get_queue(queues.VLM)
    assert queue.count == 3 and not out.exists()
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE, run.error
    assert run.jobs_done == 3 and run.counters["kept"] + run.counters["rejected"] == 10
    assert sorted(line["image_id"] for line in read_jsonl(out)) == sorted(i.pk for i in images)
    assert len(list((tmp_path / "keep").iterdir())) == run.counters["kept"]
    assert len(openai_fake.requests) == 10


def test_input_dir_twice_finds_ingested_files_by_their_content(db, prompts, openai_fake, tmp_path, capsys):
    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode(photo_like(400, 300, 5), "PNG"))  # ingest re-encodes PNG to JPEG
    filter_vlm(capsys, "--input-dir", folder)
    shutil.copy(folder / "a.png", folder / "a_copy.png")
    text = filter_vlm(capsys, "--input-dir", folder)
    assert "2 files, 2 already stored, 0 ingested" in text  # the copy is the stored picture after re-encoding
    assert Image.objects.count() == 1 and len(openai_fake.requests) == 1


@pytest.mark.parametrize("argv, imported", [
    (["import_urls"], []),  # a command that calls no model starts without the clients' second of imports
    (["rqworker", "vlm"], ["ollama", "openai"]),  # a worker imports them once, before it forks for each job
    (["rqworker-pool", "vlm"], ["ollama", "openai"]),
    (["shell", "-c", "rqworker"], []),
])
def test_the_model_clients_are_imported_only_where_a_model_may_be_called(worker_env, argv, imported):
    code = ("import sys, django; django.setup(); "
            "print(' '.join(sorted(m for m in ('ollama', 'openai') if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code, *argv], env=worker_env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == imported
