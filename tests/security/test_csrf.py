"""Every state-changing endpoint refuses a POST without the CSRF token, even from a signed-in user
(an htmx request carries it in the X-CSRFToken header from base.html)."""
import pytest
from django.test import Client

from tests.factories import image_row

pytestmark = pytest.mark.django_db

POSTS = [
    "/images/{pk}/decide/", "/review/", "/review/bulk/", "/review/undo/", "/runs/launch/crawl/",
    "/runs/1/cancel/", "/export/", "/accounts/logout/", "/admin/curation/run/",
]


@pytest.fixture
def strict(launcher):
    client = Client(enforce_csrf_checks=True)
    client.force_login(launcher)
    return client


@pytest.mark.parametrize("url", POSTS)
def test_post_without_token_is_refused(strict, url):
    image = image_row(1, auto_decision="keep")
    response = strict.post(url.format(pk=image.pk), {"decision": "keep", "ids": str(image.pk), "qs": ""})
    assert response.status_code == 403


def test_sign_in_needs_the_token_too(django_user_model):
    django_user_model.objects.create_user("rita", password="pw-rita-12345678")
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "rita", "password": "pw-rita-12345678"},
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 403


def test_htmx_header_token_is_accepted(strict):
    image = image_row(1, auto_decision="keep")
    strict.get("/")  # sets the csrftoken cookie
    token = strict.cookies["csrftoken"].value
    response = strict.post(f"/images/{image.pk}/decide/", {"decision": "reject"},
                           HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    image.refresh_from_db()
    assert image.human_decision == "reject"
