"""Snapshots: frozen on export, written again byte for byte, compared, with provenance; the three formats
loaded by the libraries their users use (datasets for imagefolder and parquet, webdataset for shards)."""
import csv
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import django_rq
import pytest
from django.contrib.admin.sites import site
from django.core.management import CommandError, call_command
from django.db.models import ProtectedError
from rq import SimpleWorker

from crawl.models import Source
from curation import decisions, export, review, snapshots
from curation.models import AutoStage, Image, Run, Snapshot, SnapshotImage
from curation.runs import Tracker
from curation.snapshot_diff import diff
from sceneimg_site import queues
from tests.factories import prompt_version, stored_data, stored_image, verdict

pytestmark = pytest.mark.django_db


@pytest.fixture
def curated(settings, tmp_path):
    """Five kept images (one PNG) and one rejected, with scores, a verdict and sources."""
    settings.SCENEIMG_EXPORT_DIR = str(tmp_path / "exports")
    images = [stored_image(seed, width=64, height=48, fmt="PNG" if seed == 2 else "JPEG",
                           auto_decision="reject" if seed == 5 else "keep", vlm_score=0.5 + seed / 100)
              for seed in range(6)]
    pv = prompt_version("v1", system_text="Judge the room.", user_template="Is it lived-in?")
    verdict(images[0], pv, "keep", 0.9, model="gpt-4.1", reason="cluttered kitchen", tags=["kitchen"])
    Source.objects.create(image=images[0], provider="baidu", query="凌乱的厨房", url="http://img.test/a.jpg",
                          page_url="http://page.test/a.html", title="=HYPERLINK(\"x\")", outcome="stored")
    Source.objects.create(image=images[1], provider="baidu_similar", seed_image=images[0],
                          url="http://img.test/b.jpg", outcome="stored")
    return {"images": images, "pv": pv}


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_hashes(folder):
    return {str(p.relative_to(folder)): sha(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def only_snapshot():
    return Snapshot.objects.get()


# --- Snapshots ---------------------------------------------------------------------------------

def test_export_freezes_a_snapshot_of_what_it_took(curated, tmp_path, django_user_model):
    user = django_user_model.objects.create_user("ana")
    export.export(Tracker(), "final=keep", tmp_path / "a.zip", "zip", name="kitchens v1", user=user)
    snapshot = only_snapshot()
    kept = [img for img in curated["images"] if img.final_decision == "keep"]
    assert (snapshot.name, snapshot.filter, snapshot.created_by, snapshot.image_count, snapshot.complete) == \
        ("kitchens v1", "final=keep", user, len(kept), True)
    rows = {r.image_id: json.loads(r.record) for r in SnapshotImage.objects.filter(snapshot=snapshot)}
    assert sorted(rows) == sorted(img.pk for img in kept)
    first = rows[curated["images"][0].pk]
    assert first["verdicts"][0]["model"] == "gpt-4.1" and first["verdicts"][0]["prompt_version"] == "v1"
    assert first["sources"][0]["query"] == "凌乱的厨房" and first["final_decision"] == "keep"
    # The frozen records are the export's metadata.jsonl lines, byte for byte.
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        lines = zf.read(export.METADATA_NAME).decode().splitlines()
    assert lines == [r.record for r in SnapshotImage.objects.filter(snapshot=snapshot).order_by("image_id")]


def test_snapshots_are_immutable_and_protect_their_images(curated, tmp_path, admin_client):
    export.export(Tracker(), "final=keep", tmp_path / "a.zip", "zip")
    snapshot = only_snapshot()
    snapshot.name = "renamed"
    with pytest.raises(ValueError, match="immutable"):
        snapshot.save()
    row = SnapshotImage.objects.filter(snapshot=snapshot).first()
    with pytest.raises(ValueError, match="immutable"):
        row.save()
    with pytest.raises(ProtectedError):
        Image.objects.filter(pk=row.image_id).delete()
    model_admin = site._registry[Snapshot]
    request = admin_client.get("/admin/").wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, snapshot)
    assert not model_admin.has_delete_permission(request, snapshot)
    page = admin_client.get(f"/admin/curation/snapshot/{snapshot.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content and b'name="name"' not in page.content
    assert b"Judge the room." in page.content  # the provenance, shown as text
    assert admin_client.post(f"/admin/curation/snapshot/{snapshot.pk}/delete/").status_code == 403
    assert Snapshot.objects.filter(pk=snapshot.pk).exists()


def test_a_cancelled_freeze_leaves_no_snapshot(curated, monkeypatch):
    class Stop(Exception):
        pass

    def fail_on_third(images):
        for n, item in enumerate(images):
            if n == 2:
                raise Stop()
            yield item

    real_freeze = snapshots.freeze
    monkeypatch.setattr(snapshots, "freeze", lambda t, f, records, **kw: real_freeze(t, f, fail_on_third(records), **kw))
    monkeypatch.setattr(snapshots, "BATCH", 1)
    with pytest.raises(Stop):
        export.freeze(Tracker(), "final=keep")
    assert not Snapshot.objects.exists() and not SnapshotImage.objects.exists()


def test_frozen_records_are_canonical_json():
    # Sorted keys whatever the insertion order; NaN and infinity (not JSON) become null; -0.0 stays.
    assert snapshots.canonical_json({"b": float("nan"), "a": [1e-07, float("inf"), {"z": -0.0, "y": "厨房"}]}) == \
        '{"a": [1e-07, null, {"y": "厨房", "z": -0.0}], "b": null}'


# --- Reproducible ------------------------------------------------------------------------------

def change_everything(images, user):
    """Decisions, verdicts and sources all change after the snapshot was frozen."""
    review.set_decision([images[0].pk], "reject", user)
    pv2 = prompt_version("v2", system_text="Stricter.")
    verdict(images[1], pv2, "reject", 0.1, model="gpt-4.1")
    decisions.decide(AutoStage.NEAR_DUPLICATE, [{"id": images[2].pk, "decision": "reject", "reason": "dup"}])
    Source.objects.create(image=images[3], provider="url_list", url="http://new.test/x.jpg", outcome="stored")


@pytest.mark.parametrize("fmt", ["zip", "folder", "webdataset", "parquet"])
def test_exporting_a_snapshot_again_gives_the_same_bytes(curated, tmp_path, fmt, django_user_model):
    ext = ".zip" if fmt == "zip" else ""
    export.export(Tracker(), "final=keep", tmp_path / f"first{ext}", fmt, shard_size=2)
    snapshot = only_snapshot()
    change_everything(curated["images"], django_user_model.objects.create_user("rev"))
    export.export_snapshot(Tracker(), snapshot, tmp_path / f"again{ext}", fmt, shard_size=2)
    if fmt == "zip":
        assert sha(tmp_path / "first.zip") == sha(tmp_path / "again.zip")
        with zipfile.ZipFile(tmp_path / "again.zip") as zf:
            # Fixed timestamps: the snapshot's (to the zip's two-second step), not the time of writing.
            frozen = snapshot.created_at
            assert {info.date_time for info in zf.infolist()} == {
                (*frozen.timetuple()[:5], frozen.second - frozen.second % 2)}
            names = [info.filename for info in zf.infolist()]
        assert names == sorted(n for n in names if n.startswith("images/")) + [
            "metadata.jsonl", "sceneimg.csv", "provenance.csv", "manifest.json"]
    else:
        first, again = tree_hashes(tmp_path / "first"), tree_hashes(tmp_path / "again")
        assert first == again and len(first) > 2
    # A new export of the same filter sees the changes: the snapshot, not luck, kept the bytes equal.
    export.export(Tracker(), "final=keep", tmp_path / f"later{ext}", fmt, shard_size=2)
    later = sha(tmp_path / "later.zip") if fmt == "zip" else tree_hashes(tmp_path / "later")
    assert later != (sha(tmp_path / "first.zip") if fmt == "zip" else tree_hashes(tmp_path / "first"))


def test_manifest_names_the_snapshot_and_a_sha256_per_file(curated, tmp_path):
    out = tmp_path / "set"
    export.export(Tracker(), "final=keep", out, "folder", name="m")
    snapshot = only_snapshot()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["snapshot"]["id"] == snapshot.pk and manifest["snapshot"]["digest"] == snapshot.digest
    assert manifest["counts"] == {"exported": snapshot.image_count, "missing": 0}
    listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    on_disk = {name: digest for name, digest in tree_hashes(out).items() if name != "manifest.json"}
    assert listed == on_disk
    image = curated["images"][0]
    assert listed[export.archive_name(image)] == image.sha256 == hashlib.sha256(stored_data(image)).hexdigest()


def test_a_snapshot_whose_rows_were_altered_is_refused(curated, tmp_path):
    export.export(Tracker(), "final=keep", tmp_path / "a.zip", "zip")
    snapshot = only_snapshot()
    row = SnapshotImage.objects.filter(snapshot=snapshot).first()
    SnapshotImage.objects.filter(pk=row.pk).update(record=row.record.replace('"keep"', '"reject"'))
    with pytest.raises(export.ExportError, match="digest"):
        export.export_snapshot(Tracker(), snapshot, tmp_path / "b.zip", "zip")
    assert not (tmp_path / "b.zip").exists() and not (tmp_path / "b.zip.part").exists()


# --- The formats, read by their users' libraries -----------------------------------------------

def kept_ids(curated):
    return sorted(img.pk for img in curated["images"] if img.final_decision == "keep")


@pytest.mark.parametrize("fmt", ["folder", "zip"])
def test_imagefolder_loads_with_datasets(curated, tmp_path, fmt):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / ("set.zip" if fmt == "zip" else "set")
    export.export(Tracker(), "final=keep", out, fmt)
    if fmt == "zip":
        zipfile.ZipFile(out).extractall(tmp_path / "unzipped")
        out = tmp_path / "unzipped"
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(ds["image_id"]) == kept_ids(curated)
    row = ds[ds["image_id"].index(curated["images"][0].pk)]
    assert row["image"].size == (64, 48) and row["final_decision"] == "keep"
    assert row["verdicts"][0]["reason"] == "cluttered kitchen"


def test_webdataset_shards_load_with_webdataset(curated, tmp_path):
    wds = pytest.importorskip("webdataset")
    out = tmp_path / "shards"
    export.export(Tracker(), "final=keep", out, "webdataset", shard_size=2)
    shards = sorted(str(p) for p in out.glob("sceneimg-*.tar"))
    assert [Path(s).name for s in shards] == ["sceneimg-000000.tar", "sceneimg-000001.tar", "sceneimg-000002.tar"]
    samples = list(wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode("pil"))
    assert [int(s["__key__"]) for s in samples] == kept_ids(curated)
    by_id = {s["json"]["image_id"]: s for s in samples}
    png = curated["images"][2]
    assert by_id[png.pk]["png"].size == (64, 48) and by_id[png.pk]["json"]["sha256"] == png.sha256
    assert "file_name" not in by_id[png.pk]["json"]
    with tarfile.open(shards[0]) as tar:
        assert {(m.uid, m.gid, m.uname, m.mode) for m in tar.getmembers()} == {(0, 0, "", 0o644)}


def test_parquet_loads_with_datasets(curated, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "pq"
    export.export(Tracker(), "final=keep", out, "parquet")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "metadata.parquet", "provenance.csv"]
    ds = datasets.load_dataset("parquet", data_files=str(out / "metadata.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert ds["image_id"] == kept_ids(curated)
    first = ds[0]
    assert first["final_decision"] == "keep" and isinstance(first["vlm_score"], float)
    assert first["queries"] == "凌乱的厨房"
    assert json.loads(first["metadata"])["verdicts"][0]["tags"] == ["kitchen"]
    # The crawled title keeps its text here; only the CSV defuses spreadsheet formulas.
    assert json.loads(first["metadata"])["sources"][0]["title"] == "=HYPERLINK(\"x\")"


# --- Provenance --------------------------------------------------------------------------------

def test_provenance_sheet_per_image_and_per_snapshot(curated, tmp_path, client, django_user_model):
    export.export(Tracker(), "final=keep", tmp_path / "a.zip", "zip")
    snapshot = only_snapshot()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        table = list(csv.DictReader(io.StringIO(zf.read("provenance.csv").decode())))
    first, second = curated["images"][0], curated["images"][1]
    rows = {int(r["image_id"]): r for r in table}
    assert rows[first.pk]["source_urls"] == "http://img.test/a.jpg"
    assert rows[first.pk]["page_urls"] == "http://page.test/a.html"
    assert rows[first.pk]["queries"] == "凌乱的厨房" and rows[first.pk]["providers"] == "baidu"
    assert rows[first.pk]["judged_by"].startswith("v1 (") and "openai/gpt-4.1: keep" in rows[first.pk]["judged_by"]
    assert rows[first.pk]["first_seen"] == first.created_at.isoformat()
    assert rows[second.pk]["seeds"] == f"#{first.pk}"
    sheet = snapshot.provenance
    assert [p["system_text"] for p in sheet["vlm_prompts"]] == ["Judge the room."]
    assert sheet["clip"]["settings"]["prompt_set"] == "v1"
    assert len(sheet["code_version"]["git_commit"] or "0" * 40) == 40

    client.force_login(django_user_model.objects.create_user("viewer"))
    page = client.get(f"/export/snapshots/{snapshot.pk}/provenance/")
    assert page.status_code == 200 and "凌乱的厨房" in page.content.decode()
    download = client.get(f"/export/snapshots/{snapshot.pk}/provenance.csv")
    body = b"".join(download.streaming_content).decode()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert body == zf.read("provenance.csv").decode()
    detail = client.get(f"/export/snapshots/{snapshot.pk}/")
    assert "Judge the room." in detail.content.decode()


def test_provenance_csv_defuses_formulas(curated, tmp_path):
    Source.objects.filter(image=curated["images"][0]).update(query="=cmd|' /C calc'!A0")
    export.export(Tracker(), "final=keep", tmp_path / "a.zip", "zip")
    rows = list(export.provenance_csv_rows(only_snapshot()))
    assert "'=cmd|' /C calc'!A0" in [row[rows[0].index("queries")] for row in rows[1:]]


# --- Comparable --------------------------------------------------------------------------------

def two_snapshots(curated, user, filter_string="final=keep"):
    images = curated["images"]
    a = export.freeze(Tracker(), filter_string, name="before")
    review.set_decision([images[0].pk], "reject", user)                                  # human override
    decisions.decide(AutoStage.NEAR_DUPLICATE, [{"id": images[1].pk, "decision": "reject", "reason": "dup"}])
    verdict(images[5], curated["pv"], "keep", 0.8, model="gpt-4.1")                       # new VLM verdict
    decisions.decide(AutoStage.VLM, [{"id": images[5].pk, "decision": "keep", "reason": "VLM keep"}])
    new = stored_image(99, width=64, height=48, auto_decision="keep")                     # new image
    b = export.freeze(Tracker(), filter_string, name="after")
    return a, b, new


def test_diff_lists_what_entered_left_and_changed_by_reason(curated, django_user_model):
    images = curated["images"]
    a, b, new = two_snapshots(curated, django_user_model.objects.create_user("rev"))
    result = diff(a, b)
    assert result.groups["entered"] == {"new image": [new.pk], "new VLM verdict": [images[5].pk]}
    assert result.groups["left"] == {"human override": [images[0].pk], "new duplicate": [images[1].pk]}
    assert result.groups["changed"] == {}


def test_diff_of_unfiltered_snapshots_names_changed_decisions(curated, django_user_model):
    images = curated["images"]
    a, b, new = two_snapshots(curated, django_user_model.objects.create_user("rev"), filter_string="")
    result = diff(a, b)
    assert result.groups["entered"] == {"new image": [new.pk]}
    assert result.groups["left"] == {}
    assert result.groups["changed"] == {"human override": [images[0].pk], "new duplicate": [images[1].pk],
                                        "new VLM verdict": [images[5].pk]}
    assert result.transitions == {("keep", "reject"): 2, ("reject", "keep"): 1}


def test_diff_command_and_page_link_to_the_gallery(curated, django_user_model, client, capsys):
    images = curated["images"]
    user = django_user_model.objects.create_user("rev")
    a, b, new = two_snapshots(curated, user)
    call_command("diff_snapshots", str(a.pk), str(b.pk), "--ids")
    out = capsys.readouterr().out
    assert "entered 2" in out and "left 2" in out and "changed decision 0" in out
    assert f"  human override 1  /?ids={images[0].pk}" in out
    assert f"  new image 1  /?ids={new.pk}" in out
    call_command("diff_snapshots", str(a.pk), str(b.pk), "--json")
    assert json.loads(capsys.readouterr().out)["left"]["new duplicate"] == [images[1].pk]
    with pytest.raises(CommandError, match="no such snapshot"):
        call_command("diff_snapshots", str(a.pk), "999999")

    client.force_login(user)
    page = client.get("/export/snapshots/diff/", {"a": a.pk, "b": b.pk})
    assert page.status_code == 200
    html = page.content.decode()
    assert f'href="/?ids={images[1].pk}" data-reason="new duplicate"' in html
    gallery = client.get("/", {"ids": f"{images[0].pk},{new.pk}"})
    assert sorted(img.pk for img in gallery.context["images"]) == sorted([images[0].pk, new.pk])


def test_gallery_ids_and_snapshot_filters(curated, client, django_user_model, tmp_path):
    from curation.gallery import FilterError, filter_images

    images = curated["images"]
    assert [i.pk for i in filter_images({"ids": f"{images[2].pk}, {images[4].pk}", "sort": "old"})] == \
        [images[2].pk, images[4].pk]
    with pytest.raises(FilterError, match="ids"):
        filter_images({"ids": "1,two"})
    snapshot = export.freeze(Tracker(), "final=reject")
    review.set_decision([images[5].pk], "keep", django_user_model.objects.create_user("rev"))
    assert [i.pk for i in filter_images({"snapshot": snapshot.pk})] == [images[5].pk]


# --- Commands and pages ------------------------------------------------------------------------

def test_export_curated_command_freezes_then_re_exports_a_snapshot(curated, tmp_path, capsys):
    call_command("export_curated", "--out", str(tmp_path / "a.zip"), "--name", "cmd")
    snapshot = only_snapshot()
    assert f"(snapshot #{snapshot.pk})" in capsys.readouterr().out and snapshot.name == "cmd"
    review.set_decision([curated["images"][0].pk], None, None)
    call_command("export_curated", "--snapshot", str(snapshot.pk), "--out", str(tmp_path / "b.zip"))
    assert sha(tmp_path / "a.zip") == sha(tmp_path / "b.zip")
    call_command("export_curated", "--snapshot", str(snapshot.pk), "--out", str(tmp_path / "wds"),
                 "--format", "webdataset", "--shard-size", "4")
    assert sorted(p.name for p in (tmp_path / "wds").glob("*.tar")) == ["sceneimg-000000.tar", "sceneimg-000001.tar"]
    assert Snapshot.objects.count() == 1
    with pytest.raises(CommandError, match="no such snapshot"):
        call_command("export_curated", "--snapshot", "999999", "--out", str(tmp_path / "c.zip"))


def work_export_queue():
    queue = django_rq.get_queue(queues.EXPORT)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def test_web_export_as_webdataset_then_the_snapshot_again_as_parquet(
        curated, client, django_user_model, redis_conn, django_capture_on_commit_callbacks):
    user = django_user_model.objects.create_user("rev")
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/export/", {"filter": "final=keep", "format": "webdataset", "shard_size": "3", "name": "web"})
    run = Run.objects.get(kind="export")
    assert run.params == {"filter": "final=keep", "format": "webdataset", "name": "web", "shard_size": 3}
    work_export_queue()
    run.refresh_from_db()
    assert run.status == "done", run.error
    snapshot = only_snapshot()
    assert (snapshot.run, snapshot.created_by, snapshot.name) == (run, user, "web")

    status = client.get(f"/export/{run.pk}/progress/").content.decode()
    assert f'href="/export/{run.pk}/files/sceneimg-000001.tar"' in status
    assert f'href="/export/snapshots/{snapshot.pk}/"' in status
    shard = client.get(f"/export/{run.pk}/files/sceneimg-000000.tar")
    with tarfile.open(fileobj=io.BytesIO(b"".join(shard.streaming_content))) as tar:
        assert len(tar.getnames()) == 6  # three samples: image + json each
    assert client.get(f"/export/{run.pk}/files/..%2Fsecret").status_code == 404
    assert client.get(f"/export/{run.pk}/files/nonexistent.tar").status_code == 404

    detail = client.get(f"/export/snapshots/{snapshot.pk}/")
    assert detail.status_code == 200 and 'id="reexport-form"' in detail.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/export/", {"snapshot": snapshot.pk, "filter": "", "format": "parquet"})
    again = Run.objects.filter(kind="export").exclude(pk=run.pk).get()
    assert response["Location"] == f"/export/{again.pk}/"
    assert again.params == {"snapshot": snapshot.pk, "format": "parquet"}
    work_export_queue()
    again.refresh_from_db()
    assert again.status == "done", again.error
    assert Snapshot.objects.count() == 1
    manifest = json.loads(b"".join(client.get(f"/export/{again.pk}/files/manifest.json").streaming_content))
    assert manifest["snapshot"]["id"] == snapshot.pk and manifest["format"] == "parquet"

    listing = client.get("/export/snapshots/").content.decode()
    assert f'href="/export/snapshots/{snapshot.pk}/"' in listing


def test_re_export_of_an_unknown_snapshot_is_refused(client, django_user_model, redis_conn):
    client.force_login(django_user_model.objects.create_user("rev"))
    response = client.post("/export/", {"snapshot": 424242, "filter": "", "format": "zip"})
    assert response.status_code == 400 and "does not exist" in response.content.decode()
    assert not Run.objects.exists()


def test_snapshot_pages_require_login(client, curated):
    snapshot = export.freeze(Tracker(), "final=keep")
    for url in ("/export/snapshots/", f"/export/snapshots/{snapshot.pk}/", "/export/snapshots/diff/",
                f"/export/snapshots/{snapshot.pk}/provenance/", f"/export/snapshots/{snapshot.pk}/provenance.csv"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
