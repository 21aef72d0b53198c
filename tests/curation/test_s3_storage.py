"""Media on a real S3 server (SeaweedFS started by scripts/s3.sh): ingest, thumbnails, store-once under
races, presigned image URLs that work and expire, and an export streamed from S3 to a zip in S3."""
import io
import threading
import time
import zipfile
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.db import connection
from PIL import Image as PILImage

from crawl.ingest import Sighting, ingest_bytes
from curation import export, storage
from curation.jobs import export_job
from curation.models import Image, Run
from tests.factories import picture_bytes

pytestmark = pytest.mark.django_db


def keys(s3_storage, folder=""):
    """Every key under this test's prefix (and `folder`), without the prefix."""
    client = s3_storage.connection.meta.client
    prefix = f"{s3_storage.location}/{folder}"
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_storage.bucket_name, Prefix=prefix):
        found += [obj["Key"][len(s3_storage.location) + 1:] for obj in page.get("Contents", [])]
    return sorted(found)


def raw_get(s3_storage, name):
    client = s3_storage.connection.meta.client
    return client.get_object(Bucket=s3_storage.bucket_name, Key=f"{s3_storage.location}/{name}")["Body"].read()


def test_ingest_stores_image_and_thumbnail_once_in_the_bucket(s3_storage, settings, tmp_path):
    data = picture_bytes(1, 640, 480)
    first = ingest_bytes(data, Sighting(provider="folder", path="a.jpg"))
    again = ingest_bytes(data, Sighting(provider="folder", path="b.jpg"))
    image = first.image
    assert (first.outcome, again.outcome, again.image_id) == ("stored", "duplicate", image.pk)
    assert keys(s3_storage) == sorted([image.file.name, image.thumbnail.name])
    assert raw_get(s3_storage, image.file.name) == data
    thumb = PILImage.open(io.BytesIO(raw_get(s3_storage, image.thumbnail.name)))
    assert max(thumb.size) <= settings.SCENEIMG_THUMB_SIZE
    # Nothing went to the local media folder.
    assert not any((tmp_path / "media").rglob("*.jpg"))


def test_same_name_stored_by_racing_workers_is_one_object_with_the_first_bytes(s3_storage):
    name = "images/ra/ce/race.jpg"
    barrier = threading.Barrier(8)
    returned = []

    def store(i):
        assert s3_storage.connection  # each thread's own client, made before the start line
        barrier.wait()
        returned.append(storage.save_once(name, f"payload {i}".encode()))

    threads = [threading.Thread(target=store, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert returned == [name] * 8
    assert keys(s3_storage) == [name]  # never a renamed second copy (name_AbC123.jpg)
    first = raw_get(s3_storage, name)
    assert first.startswith(b"payload ")
    storage.save_once(name, b"a later, different write")
    assert raw_get(s3_storage, name) == first  # the conditional PUT never overwrites


@pytest.mark.django_db(transaction=True)
def test_two_workers_ingesting_the_same_picture_leave_one_row_and_one_object(s3_storage):
    data = picture_bytes(2, 640, 480)
    barrier = threading.Barrier(2)
    outcomes = []

    def worker(i):
        try:
            barrier.wait()
            outcomes.append(ingest_bytes(data, Sighting(provider="folder", path=f"{i}.jpg")).outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["duplicate", "stored"]
    image = Image.objects.get()
    assert keys(s3_storage) == sorted([image.file.name, image.thumbnail.name])


def test_gallery_image_url_is_presigned_works_and_expires(s3_storage, settings, client):
    image = ingest_bytes(picture_bytes(3, 640, 480), Sighting(provider="folder", path="c.jpg")).image
    client.force_login(User.objects.create_user("viewer", password="pw-12345678"))
    settings.SCENEIMG_S3_URL_EXPIRY = 120
    response = client.get(f"/images/{image.pk}/full")
    assert response.status_code == 302
    url = response["Location"]
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["120"] and "X-Amz-Signature" in query
    fetched = requests.get(url, timeout=10)
    assert fetched.content == raw_get(s3_storage, image.file.name)
    assert fetched.headers["Content-Type"] == "image/jpeg"
    unsigned = url.split("?", 1)[0]
    assert requests.get(unsigned, timeout=10).status_code == 403  # the bucket is private
    thumb = client.get(f"/images/{image.pk}/thumb")
    assert thumb.status_code == 302 and requests.get(thumb["Location"], timeout=10).status_code == 200
    settings.SCENEIMG_S3_URL_EXPIRY = 1
    short_lived = client.get(f"/images/{image.pk}/full")["Location"]
    time.sleep(2.5)  # only ever more expired as time passes, however loaded the machine
    assert requests.get(short_lived, timeout=10).status_code == 403


def test_proxy_delivery_streams_through_the_app(s3_storage, settings, client):
    data = picture_bytes(4, 640, 480)
    image = ingest_bytes(data, Sighting(provider="folder", path="d.jpg")).image
    client.force_login(User.objects.create_user("viewer", password="pw-12345678"))
    settings.SCENEIMG_MEDIA_DELIVERY = "proxy"
    response = client.get(f"/images/{image.pk}/full")
    assert response.status_code == 200 and b"".join(response.streaming_content) == data
    client.logout()
    assert client.get(f"/images/{image.pk}/full").status_code == 302  # to the login page, never the file


def test_export_reads_from_s3_and_writes_the_zip_to_s3(s3_storage, settings, tmp_path, client):
    settings.SCENEIMG_EXPORT_DIR = str(tmp_path / "exports")
    pictures = {}
    for seed in (5, 6, 7):
        data = picture_bytes(seed, 640, 480)
        source = ingest_bytes(data, Sighting(provider="folder", path=f"{seed}.jpg"))
        pictures[source.image_id] = data
    user = User.objects.create_user("exporter", password="pw-12345678")
    run = Run.objects.create(kind=Run.Kind.EXPORT, params={"filter": "", "format": "zip"}, created_by=user)
    export_job(run.pk, filter="", format="zip")
    run.refresh_from_db()
    assert run.status == Run.Status.DONE, run.error
    assert run.result == f"{export.STORAGE_PREFIX}exports/export-{run.pk}.zip"
    assert not list((tmp_path / "exports").iterdir())  # the local copy was only on the way
    client.force_login(user)
    response = client.get(f"/export/{run.pk}/download/")
    assert response.status_code == 302
    assert "attachment" in parse_qs(urlsplit(response["Location"]).query)["response-content-disposition"][0]
    body = requests.get(response["Location"], timeout=10).content
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        got = {int(n.split("/")[1].split(".")[0]): zf.read(n) for n in zf.namelist() if n.startswith("images/")}
    assert got == pictures


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_importing_overlapping_folders_store_each_picture_once(s3_storage, worker_env,
                                                                                    tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from crawl.models import Source

    root = Path(__file__).resolve().parents[2]
    pictures = {seed: picture_bytes(seed, 640, 480) for seed in range(10, 22)}
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder, seeds in zip(folders, (range(10, 18), range(14, 22)), strict=True):  # 14-17 in both
        folder.mkdir()
        for seed in seeds:
            (folder / f"{seed}.jpg").write_bytes(pictures[seed])
    children = [subprocess.Popen([sys.executable, "manage.py", "import_folder", str(folder)],
                                 cwd=root, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for folder in folders]
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-2000:]
    images = list(Image.objects.all())
    assert len(images) == len(pictures) and Source.objects.count() == 16
    assert keys(s3_storage) == sorted([i.file.name for i in images] + [i.thumbnail.name for i in images])


def test_threads_get_their_own_connection_from_one_session(s3_storage):
    """Each thread has its own boto3 resource (they are not thread-safe), all made from one session, so
    botocore's service models are loaded once, not once per import thread; a second storage instance
    (threads racing to create default_storage make several) shares that session too."""
    from curation.s3 import PrivateS3Storage

    connections = []
    second = PrivateS3Storage(location=s3_storage.location)

    def connect(n):
        connections.append(s3_storage.connection)
        connections.append(second.connection)
        storage.save_once(f"threads/{n}.txt", b"x")  # not the thread's ident: an ended thread's is reused

    # All eight alive at once, so each one is a distinct thread with its own connection.
    started = threading.Barrier(8)
    threads = [threading.Thread(target=lambda n=n: (started.wait(), connect(n))) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in connections}) == 16
    assert len({id(c.meta.client._loader) for c in connections}) == 1
    assert len(keys(s3_storage, "threads/")) == 8
