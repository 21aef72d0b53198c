"""Shared fixtures. Tests run against the real Postgres (or SQLite) and the real Redis."""
import django_rq
import pytest

from tests.images import encode, photo_like


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def redis_conn():
    conn = django_rq.get_connection("default")
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def make_photo():
    return photo_like


@pytest.fixture
def jpeg_bytes():
    return lambda seed=0, w=640, h=480: encode(photo_like(w, h, seed), "JPEG", quality=90)


@pytest.fixture
def worker_env(settings):
    """Environment for a child process (rqworker, manage.py) that shares this test's database and media."""
    import os

    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "sceneimg_site.test_settings",
        "DATABASE_URL": url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "REDIS_URL": settings.REDIS_URL,
        "SCENEIMG_FETCH_ALLOW_PRIVATE": ",".join(settings.SCENEIMG_FETCH_ALLOW_PRIVATE),
        "SCENEIMG_TEST_DB": "",
    })
    if settings.SCENEIMG_S3_BUCKET:  # the test's s3_storage: the child stores in the same bucket and prefix
        env.update({name: str(getattr(settings, name)) for name in (
            "SCENEIMG_S3_BUCKET", "SCENEIMG_S3_ENDPOINT_URL", "SCENEIMG_S3_ACCESS_KEY", "SCENEIMG_S3_SECRET_KEY",
            "SCENEIMG_S3_PREFIX", "SCENEIMG_S3_REGION")})
    return env


S3_TEST_BUCKET = "sceneimg-test"


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 server: SCENEIMG_S3_ENDPOINT_URL, or the local SeaweedFS that scripts/s3.sh starts."""
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "s3.sh"
    endpoint = subprocess.run([str(script)], check=True, capture_output=True, text=True, timeout=180).stdout.strip()
    key = os.environ.get("SCENEIMG_S3_ACCESS_KEY", "sceneimg")
    secret = os.environ.get("SCENEIMG_S3_SECRET_KEY", "sceneimg-local-secret")
    return {"endpoint": endpoint, "key": key, "secret": secret}


@pytest.fixture
def s3_storage(settings, s3_endpoint):
    """Media in a private S3 bucket for this test: its own key prefix, removed afterwards. Yields the storage."""
    import time
    import uuid

    from botocore.exceptions import ClientError
    from django.core.files.storage import default_storage

    settings.SCENEIMG_S3_BUCKET = S3_TEST_BUCKET
    settings.SCENEIMG_S3_ENDPOINT_URL = s3_endpoint["endpoint"]
    settings.SCENEIMG_S3_ACCESS_KEY = s3_endpoint["key"]
    settings.SCENEIMG_S3_SECRET_KEY = s3_endpoint["secret"]
    settings.SCENEIMG_S3_REGION = "us-east-1"
    settings.SCENEIMG_S3_PREFIX = f"t-{uuid.uuid4().hex[:12]}"
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "curation.s3.PrivateS3Storage"}}
    client = default_storage.connection.meta.client
    deadline = time.monotonic() + 60  # a SeaweedFS just started answers before its filer takes buckets
    while True:
        try:
            client.head_bucket(Bucket=S3_TEST_BUCKET)
            break
        except ClientError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"S3 at {s3_endpoint['endpoint']}: no bucket {S3_TEST_BUCKET} ({exc})") from exc
            try:
                client.create_bucket(Bucket=S3_TEST_BUCKET)
            except ClientError:
                time.sleep(0.2)
    yield default_storage
    for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=S3_TEST_BUCKET, Prefix=settings.SCENEIMG_S3_PREFIX + "/"):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=S3_TEST_BUCKET, Key=obj["Key"])
