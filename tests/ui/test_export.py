"""Export: the stage (zip and folder), the command, the background run, the pages and the download."""
import csv
import io
import json
import zipfile

import django_rq
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from rq import SimpleWorker

from crawl.models import Source
from curation import export, launch
from curation.models import FilterScore, Run
from curation.runs import Tracker
from sceneimg_site import queues
from tests.factories import stored_data, stored_image
from vlm.models import PromptVersion, VlmVerdict

pytestmark = pytest.mark.django_db


def image_and_bytes(i, decision, fmt="JPEG"):
    img = stored_image(i, width=64, height=48, fmt=fmt, auto_decision=decision, vlm_score=0.5 + i / 100)
    return img, stored_data(img)


@pytest.fixture
def images(settings, tmp_path):
    settings.SCENEIMG_EXPORT_DIR = str(tmp_path / "exports")
    keep1, data1 = image_and_bytes(1, "keep")
    keep2, data2 = image_and_bytes(2, "keep", fmt="PNG")
    reject, _ = image_and_bytes(3, "reject")
    pv = PromptVersion.objects.create(name="v1", system_text="s", user_template="u", content_hash="a" * 64)
    VlmVerdict.objects.create(image=keep1, prompt_version=pv, backend="openai", model="gpt-4.1", decision="keep",
                              score=0.9, reason="cluttered kitchen", tags=["kitchen", "room:kitchen", "object:mug"])
    FilterScore.objects.create(image=keep1, scorer_key="clip:ViT-B-32:none:v1", scores={"indoor": 0.3},
                               indoor_margin=0.05, passed=True, uncalibrated=True)
    # A hostile URL and title: neither may reach a name inside the archive; the title is a formula.
    Source.objects.create(image=keep1, provider="url_list", url="http://x.test/../../etc/passwd.jpg",
                          title="=HYPERLINK(\"http://evil\")", outcome="stored", query="厨房")
    return {"keep1": (keep1, data1), "keep2": (keep2, data2), "reject": reject, "pv": pv}


def test_zip_holds_stored_images_metadata_and_csv(images, tmp_path):
    out = tmp_path / "set.zip"
    tracker = Tracker()
    export.export(tracker, "final=keep", out, "zip")
    assert tracker.counts == {"frozen": 2, "exported": 2}
    assert not (tmp_path / "set.zip.part").exists()
    keep1, data1 = images["keep1"]
    keep2, data2 = images["keep2"]
    with zipfile.ZipFile(out) as zf:
        names = sorted(zf.namelist())
        assert names == sorted([f"images/{keep1.pk:08d}.jpg", f"images/{keep2.pk:08d}.png",
                                "manifest.json", "metadata.jsonl", "provenance.csv", "sceneimg.csv"])
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
        assert zf.read(f"images/{keep1.pk:08d}.jpg") == data1
        assert zf.read(f"images/{keep2.pk:08d}.png") == data2
        rows = [json.loads(line) for line in zf.read("metadata.jsonl").decode().splitlines()]
        table = list(csv.reader(io.StringIO(zf.read("sceneimg.csv").decode())))
    by_id = {r["image_id"]: r for r in rows}
    assert set(by_id) == {keep1.pk, keep2.pk}
    first = by_id[keep1.pk]
    assert first["file_name"] == f"images/{keep1.pk:08d}.jpg"
    assert first["final_decision"] == "keep" and first["sha256"] == keep1.sha256
    assert first["verdicts"][0]["reason"] == "cluttered kitchen" and first["verdicts"][0]["prompt_version"] == "v1"
    # The original's room and object tags are exported apart, as it asked for them.
    assert [first["verdicts"][0][k] for k in ("tags", "room_tags", "object_tags")] == [["kitchen"], ["kitchen"], ["mug"]]
    assert first["filter_scores"][0]["uncalibrated"] is True
    assert first["sources"][0]["url"] == "http://x.test/../../etc/passwd.jpg"
    assert first["sources"][0]["query"] == "厨房"
    assert table[0][0] == "file_name" and len(table) == 3
    csv_first = dict(zip(table[0], next(r for r in table[1:] if r[1] == str(keep1.pk)), strict=True))
    assert csv_first["vlm_verdicts"] == "v1/gpt-4.1: keep 0.90"
    assert export.read_metadata(out) == rows


def test_csv_defuses_spreadsheet_formulas():
    assert export._cell('=HYPERLINK("x")') == "'=HYPERLINK(\"x\")"
    assert export._cell("-1+2") == "'-1+2"
    assert export._cell(-0.5) == -0.5
    assert export._cell("kitchen") == "kitchen"


def test_folder_export_and_filters(images, tmp_path):
    out = tmp_path / "folder"
    export.export(Tracker(), "final=reject", out, "folder")
    reject = images["reject"]
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{reject.pk:08d}.jpg"]
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["image_id"] for r in rows] == [reject.pk]
    assert (out / "sceneimg.csv").is_file()


def test_missing_file_is_skipped_and_counted(images, tmp_path):
    keep2, _ = images["keep2"]
    default_storage.delete(keep2.file.name)
    tracker = Tracker()
    out = tmp_path / "set.zip"
    export.export(tracker, "final=keep", out, "zip")
    assert tracker.counts == {"frozen": 2, "exported": 1, "missing": 1}
    assert [r["image_id"] for r in export.read_metadata(out)] == [images["keep1"][0].pk]


def test_export_refuses_bad_filter_format_and_existing_output(images, tmp_path):
    with pytest.raises(export.ExportError, match="final"):
        export.export(Tracker(), "final=maybe", tmp_path / "a.zip", "zip")
    with pytest.raises(export.ExportError, match="--format"):
        export.export(Tracker(), "", tmp_path / "a.tar", "tar")
    (tmp_path / "exists.zip").write_bytes(b"x")
    with pytest.raises(export.ExportError, match="already exists"):
        export.export(Tracker(), "", tmp_path / "exists.zip", "zip")


def test_export_curated_command(images, tmp_path, capsys):
    out = tmp_path / "cmd.zip"
    call_command("export_curated", "--filter", "final=keep", "--out", str(out))
    assert "exported 2" in capsys.readouterr().out
    run = Run.objects.get(kind="export")
    assert run.status == "done" and run.result == str(out.resolve())
    assert len(export.read_metadata(out)) == 2
    call_command("export_curated", "--filter", "", "--out", str(tmp_path / "all"), "--format", "folder")
    assert len(list((tmp_path / "all" / "images").iterdir())) == 3
    with pytest.raises(CommandError, match="final"):
        call_command("export_curated", "--filter", "final=perhaps", "--out", str(tmp_path / "x.zip"))
    with pytest.raises(CommandError, match="already exists"):
        call_command("export_curated", "--out", str(out))


def work_export_queue():
    queue = django_rq.get_queue(queues.EXPORT)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def test_export_pages_launch_progress_and_download(client, reviewer, images, redis_conn,
                                                   django_capture_on_commit_callbacks):
    page = client.get("/export/")
    assert page.status_code == 200
    assert page.context["form"]["filter"].value() == "final=keep"
    # django-rq enqueues when the transaction commits; the test's transaction never does.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/export/", {"filter": "final=keep", "format": "zip"})
    run = Run.objects.get(kind="export")
    assert response.status_code == 302 and response["Location"] == f"/export/{run.pk}/"
    assert run.created_by == reviewer and run.params == {"filter": "final=keep", "format": "zip"}

    queued = client.get(f"/export/{run.pk}/progress/")
    assert queued.status_code == 200 and b'hx-trigger="every 2s"' in queued.content
    assert client.get(f"/export/{run.pk}/download/").status_code == 404

    work_export_queue()
    run.refresh_from_db()
    assert run.status == "done", run.error
    done = client.get(f"/export/{run.pk}/progress/")
    assert done.status_code == 286 and b"hx-trigger" not in done.content
    assert f'href="/export/{run.pk}/download/"'.encode() in done.content

    download = client.get(f"/export/{run.pk}/download/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="sceneimg-export-{run.pk}.zip"'
    body = b"".join(download.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert "metadata.jsonl" in zf.namelist()


def test_export_page_prefills_from_gallery_querystring(client, reviewer, images):
    page = client.get("/export/", {"final": "reject", "vlm_min": "0.5", "after": "99"})
    assert page.context["form"]["filter"].value() == "final=reject&vlm_min=0.5"
    assert page.context["estimate"] == (1, True)


def test_export_form_rejects_bad_filter_and_folder_for_non_staff(client, reviewer, images, redis_conn):
    bad = client.post("/export/", {"filter": "vlm_min=lots", "format": "zip"})
    assert bad.status_code == 400 and "vlm_min" in str(bad.context["form"].errors)
    folder = client.post("/export/", {"filter": "final=keep", "format": "folder"})
    assert folder.status_code == 400 and "Only staff" in str(folder.context["form"].errors)
    assert not Run.objects.exists()


def test_download_never_serves_a_path_outside_the_export_folder(client, reviewer, images, tmp_path):
    outside = tmp_path / "secret.zip"
    outside.write_bytes(b"PK")
    run = Run.objects.create(kind="export", status="done", result=str(outside), params={"format": "zip"})
    assert client.get(f"/export/{run.pk}/download/").status_code == 404
    not_export = Run.objects.create(kind="crawl", status="done", result=str(outside))
    assert client.get(f"/export/{not_export.pk}/download/").status_code == 404


def test_export_pages_require_login(client, images):
    run = Run.objects.create(kind="export", status="done")
    for url in ("/export/", f"/export/{run.pk}/", f"/export/{run.pk}/progress/", f"/export/{run.pk}/download/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_same_export_while_queued_is_not_enqueued_twice(images, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = launch.launch_export(launch.export_params("final=keep"))
        second = launch.launch_export(launch.export_params("final=keep"))
    assert first.pk == second.pk
    assert django_rq.get_queue(queues.EXPORT).count == 1
