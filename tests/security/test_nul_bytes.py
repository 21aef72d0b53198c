"""A NUL byte in any text parameter is a 400 that names the parameter, never a 500 from Postgres
(which refuses NUL in text) and never a silent match."""
import pytest

from curation import gallery
from curation.models import Review
from tests.factories import image_row, prompt_version, verdict

pytestmark = pytest.mark.django_db

GALLERY_FIELDS = ["query", "model", "backend", "seed", "tag", "provider"]


@pytest.fixture
def image():
    img = image_row(1, auto_decision="keep")
    verdict(img, prompt_version(), "keep", 0.9, reason="kitchen", tags=["kitchen"])
    return img


def _names(response, name):
    assert response.status_code == 400, response.content[:300]
    assert name in response.content.decode(errors="replace")


@pytest.mark.parametrize("field", GALLERY_FIELDS)
@pytest.mark.parametrize("page", ["/", "/count/", "/export/", "/images/{pk}/"])
def test_gallery_filters(as_reviewer, image, page, field):
    _names(as_reviewer.get(page.format(pk=image.pk), {field: "a\x00b"}), field)


@pytest.mark.parametrize("field", ["q", "tag", "model"])
def test_audit_params(as_reviewer, image, field):
    _names(as_reviewer.get("/vlm/audit/", {field: "x\x00"}), field)


def test_nul_in_a_parameter_name(as_reviewer, image):
    response = as_reviewer.get("/?qu%00ery=x")
    assert response.status_code == 400


def test_bulk_review_querystring(as_reviewer, image):
    response = as_reviewer.post("/review/bulk/", {"qs": "query=%00", "decision": "keep"})
    _names(response, "query")
    assert not Review.objects.exists()


def test_export_filter_field(as_reviewer, image):
    # The filter travels inside one parameter, so it is decoded twice: the NUL appears only then.
    response = as_reviewer.get("/export/", {"filter": "query=%00"})
    assert response.status_code in (200, 400)


@pytest.mark.parametrize("url", ["/images/{pk}/decide/", "/review/"])
def test_decision_note(as_reviewer, image, url):
    response = as_reviewer.post(url.format(pk=image.pk), {"decision": "keep", "note": "n\x00", "ids": str(image.pk)})
    _names(response, "note")
    assert not Review.objects.exists()


def test_bulk_review_note(as_reviewer, image):
    response = as_reviewer.post("/review/bulk/", {"qs": "final=keep", "decision": "reject", "note": "\x00"})
    _names(response, "note")
    assert not Review.objects.exists()


def test_filter_helpers_refuse_nul_outside_a_request():
    # export_curated --filter and the bulk-review worker parse querystrings without a request.
    with pytest.raises(gallery.FilterError, match="query"):
        gallery.filter_images("query=%00")


def test_ordinary_text_still_matches(as_reviewer, image):
    assert as_reviewer.get("/", {"query": "kitchen sink"}).status_code == 200
    assert as_reviewer.get("/vlm/audit/", {"q": "kitchen"}).status_code == 200
