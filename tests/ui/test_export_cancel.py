"""Cancelling an export from its page returns to that page, also after the progress has been polled."""
import pytest

from curation.models import Run

pytestmark = pytest.mark.django_db


def test_the_polled_progress_keeps_the_cancel_on_the_export_page(client, staff):
    run = Run.objects.create(kind=Run.Kind.EXPORT, params={"filter": "", "format": "zip"}, created_by=staff)
    polled = client.get(f"/export/{run.pk}/progress/", HTTP_HX_REQUEST="true")
    assert f'name="next" value="/export/{run.pk}/"'.encode() in polled.content
    response = client.post(f"/runs/{run.pk}/cancel/", {"next": f"/export/{run.pk}/"})
    assert response.status_code == 302 and response["Location"] == f"/export/{run.pk}/"
