"""Request bodies are capped before they are read, and nobody uploads anything before signing in."""
import io
from urllib.parse import urlencode

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.http import multipartparser
from django.test import RequestFactory
from django.test.client import encode_multipart

from curation.models import Run

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"  # what a browser's login form sends


@pytest.fixture
def parsed(monkeypatch):
    """Records every multipart body Django starts to parse."""
    calls = []
    real = multipartparser.MultiPartParser.parse

    def parse(self):
        calls.append(self)
        return real(self)

    monkeypatch.setattr(multipartparser.MultiPartParser, "parse", parse)
    return calls


def _upload(size=1000):
    return {"similar-seeds": io.BytesIO(b"\xff" * size), "similar-limit_per_seed": "5"}


@pytest.mark.parametrize("url", ["/runs/launch/similar/", "/review/bulk/", "/export/", "/"])
def test_anonymous_multipart_is_refused_unparsed(client, parsed, url):
    response = client.post(url, _upload())
    assert response.status_code == 403
    assert b"sign in" in response.content.lower()
    assert parsed == []


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_anonymous_upload_to_the_sign_in_forms_is_capped_unparsed(client, parsed, url):
    assert client.post(url, _upload(20_000)).status_code == 413
    assert parsed == []


def test_anonymous_large_form_is_refused(client, settings):
    settings.SCENEIMG_MAX_ANONYMOUS_REQUEST_BYTES = 4096
    response = client.post("/accounts/login/", urlencode({"username": "x" * 5000, "password": "y"}), content_type=FORM)
    assert response.status_code == 413


def test_sign_in_form_still_works(client, django_user_model):
    django_user_model.objects.create_user("rita", password="pw-rita-12345678")
    response = client.post("/accounts/login/", urlencode({"username": "rita", "password": "pw-rita-12345678"}),
                           content_type=FORM)
    assert response.status_code == 302


def test_declared_length_over_the_cap_is_refused_before_reading(client, launcher, settings, parsed):
    settings.SCENEIMG_MAX_REQUEST_BYTES = 10_000
    client.force_login(launcher)
    response = client.post("/runs/launch/similar/", _upload(20_000))
    assert response.status_code == 413
    assert parsed == [] and not Run.objects.exists()


def test_body_longer_than_declared_is_not_read_past_the_cap(settings):
    """A body is read through a counter: whatever the server hands over, no more than the cap is read."""
    from sceneimg_site.middleware import CountingStream, RequestTooLarge

    stream = CountingStream(io.BytesIO(b"x" * 5000), limit=1000)
    assert len(stream.read(600)) == 600
    with pytest.raises(RequestTooLarge):
        stream.read(600)


@pytest.mark.django_db(transaction=True)
def test_streamed_body_over_the_cap_is_a_413(launcher, client, settings):
    """Through the real WSGI handler: the declared length is the cap's business, not Django's default."""
    settings.SCENEIMG_MAX_REQUEST_BYTES = 2048
    settings.ALLOWED_HOSTS = ["localhost"]  # the request below names it, whatever DEBUG says
    client.force_login(launcher)
    body = b"a=" + b"x" * 4000
    environ = RequestFactory()._base_environ(
        PATH_INFO="/review/bulk/", REQUEST_METHOD="POST", CONTENT_TYPE="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(len(body)), HTTP_COOKIE=f"sessionid={client.cookies['sessionid'].value}",
        SERVER_NAME="localhost", **{"wsgi.input": io.BytesIO(body)})
    status = []
    b"".join(WSGIHandler()(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("413")


def test_a_5mb_url_list_is_within_the_form_limit(client, launcher, redis_conn):
    """The URL-list form takes up to 5 MB of text; Django's default 2.5 MB form limit refused it."""
    client.force_login(launcher)
    urls = "".join(f"http://example.com/{n:07d}.jpg\n" for n in range(110_000))
    assert 3_000_000 < len(urls) < 5_000_000
    response = client.post("/runs/launch/import_urls/", {"import_urls-urls": urls, "import_urls-workers": "4"})
    assert response.status_code == 302
    assert Run.objects.filter(kind=Run.Kind.IMPORT).exists()


def test_upload_settings_are_explicit(settings):
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= 5 * 2**20  # larger files spool to disk, not memory
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE >= 5_000_000
    assert settings.SCENEIMG_MAX_REQUEST_BYTES >= settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def test_multipart_ok_when_signed_in(client, launcher, parsed, redis_conn):
    client.force_login(launcher)
    payload = encode_multipart("BoUnDaRy", {"similar-seed_image_ids": "", "similar-limit_per_seed": "5"})
    client.post("/runs/launch/similar/", payload, content_type="multipart/form-data; boundary=BoUnDaRy")
    assert parsed  # reached the parser: signed in, within the cap
