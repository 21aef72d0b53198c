"""The VLM audit: search by reason and tags, filters, keyset pages, links, escaping."""
import pytest

from tests.factories import image_row
from vlm.models import PromptVersion, VlmVerdict
from vlm.views import AUDIT_PAGE

pytestmark = pytest.mark.django_db


@pytest.fixture
def verdicts():
    v1 = PromptVersion.objects.create(name="v1", system_text="s", user_template="u", content_hash="1" * 64)
    v2 = PromptVersion.objects.create(name="v2", system_text="s", user_template="u", content_hash="2" * 64)
    rows = {
        "messy": VlmVerdict.objects.create(image=image_row(1), prompt_version=v1, backend="openai", model="gpt-4.1",
                                           decision="keep", score=0.8, reason="A lived-in kitchen, cluttered counter",
                                           tags=["kitchen", "messy"]),
        "showroom": VlmVerdict.objects.create(image=image_row(2), prompt_version=v1, backend="openai",
                                              model="gpt-4.1", decision="reject", score=0.1,
                                              reason="Showroom render, no objects", tags=["render"]),
        "error": VlmVerdict.objects.create(image=image_row(3), prompt_version=v2, backend="ollama",
                                           model="llava:latest", decision=None, error="ReadTimeout after 60 s"),
        "other_model": VlmVerdict.objects.create(image=image_row(4), prompt_version=v2, backend="ollama",
                                                 model="llava:latest", decision="keep", score=0.7,
                                                 reason="Messy kitchen table", tags=["kitchen"]),
    }
    return v1, v2, rows


def shown(response):
    return {v.pk for v in response.context["verdicts"]}


def test_audit_requires_login(client):
    response = client.get("/vlm/audit/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("params, expected", [
    ({}, {"messy", "showroom", "error", "other_model"}),
    ({"q": "KITCHEN"}, {"messy", "other_model"}),
    ({"tag": "kitchen"}, {"messy", "other_model"}),
    ({"tag": "kitchen, messy"}, {"messy"}),
    ({"model": "llava:latest"}, {"error", "other_model"}),
    ({"decision": "reject"}, {"showroom"}),
    ({"decision": "none"}, {"error"}),
    ({"errors": "only"}, {"error"}),
    ({"errors": "exclude"}, {"messy", "showroom", "other_model"}),
    ({"q": "kitchen", "model": "gpt-4.1"}, {"messy"}),
])
def test_audit_filters(client, reviewer, verdicts, params, expected):
    _, _, rows = verdicts
    response = client.get("/vlm/audit/", params)
    assert response.status_code == 200
    assert shown(response) == {rows[name].pk for name in expected}


def test_audit_filters_by_prompt_version(client, reviewer, verdicts):
    v1, v2, rows = verdicts
    assert shown(client.get("/vlm/audit/", {"pv": v2.pk})) == {rows["error"].pk, rows["other_model"].pk}


def test_audit_rows_link_to_image_detail_and_escape_model_text(client, reviewer, verdicts):
    _, _, rows = verdicts
    evil = rows["messy"]
    evil.reason = '<img src=x onerror="alert(1)">'
    evil.tags = ["<b>bold</b>"]
    evil.save()
    html = client.get("/vlm/audit/").content.decode()
    assert f'href="/images/{evil.image_id}/"' in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "ReadTimeout after 60 s" in html  # errors are shown


def test_audit_keyset_pages_and_htmx_load_more(client, reviewer):
    pv = PromptVersion.objects.create(name="v1", system_text="s", user_template="u", content_hash="3" * 64)
    created = [
        VlmVerdict.objects.create(image=image_row(100 + i), prompt_version=pv, backend="openai", model="m",
                                  decision="keep", score=0.5, reason=f"room {i}")
        for i in range(AUDIT_PAGE + 5)
    ]
    first = client.get("/vlm/audit/", {"model": "m"})
    assert len(first.context["verdicts"]) == AUDIT_PAGE
    assert first.context["verdicts"][0].pk == created[-1].pk  # newest first
    next_url = first.context["next_url"]
    assert next_url and "after=" in next_url and "model=m" in next_url
    more = client.get("/vlm/audit/" + next_url, HTTP_HX_REQUEST="true")
    assert [t.name for t in more.templates][0] == "vlm/_audit_rows.html"
    assert {v.pk for v in more.context["verdicts"]} == {v.pk for v in created[:5]}
    assert more.context["next_url"] is None
    assert b"<html" not in more.content and b'id="audit-more"' not in more.content


def test_audit_ignores_malformed_filter_values(client, reviewer, verdicts):
    response = client.get("/vlm/audit/", {"pv": "abc", "after": "x", "decision": "maybe"})
    assert response.status_code == 200
    assert len(shown(response)) == 4
    response = client.get("/vlm/audit/", {"pv": "²", "after": "³"})  # isdigit() but not int()
    assert response.status_code == 200
    assert len(shown(response)) == 4
