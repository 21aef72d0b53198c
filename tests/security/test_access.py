"""Who may see what: anonymous users nothing but the login page, reviewers the gallery and review
actions, launchers (staff with curation.add_run) the launch forms, superusers the RQ dashboard."""
import pytest

pytestmark = pytest.mark.django_db

RQ_PAGES = ["/django-rq/", "/django-rq/queues/0/", "/django-rq/workers/0/", "/django-rq/stats.json",
            "/django-rq/queues/0/empty/"]
SIGNED_IN_PAGES = ["/", "/count/", "/runs/", "/export/", "/vlm/audit/", "/vlm/compare/",
                   "/export/snapshots/"]


@pytest.mark.parametrize("url", RQ_PAGES + SIGNED_IN_PAGES + ["/admin/"])
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code in (302, 401), url
    if response.status_code == 302:
        assert "login" in response["Location"]


@pytest.mark.parametrize("who", ["reviewer", "launcher"])
@pytest.mark.parametrize("url", RQ_PAGES)
def test_rq_dashboard_needs_a_superuser(client, request, who, url):
    client.force_login(request.getfixturevalue(who))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", ["/django-rq/", "/django-rq/queues/0/"])
def test_rq_dashboard_open_to_superusers(client, superuser, url):
    client.force_login(superuser)
    assert client.get(url).status_code == 200


def test_rq_actions_refused_to_launchers(client, launcher):
    client.force_login(launcher)
    assert client.post("/django-rq/queues/0/empty/").status_code == 403
    assert client.post("/django-rq/queues/actions/0/", {"action": "delete", "job_ids": ["x"]}).status_code == 403


@pytest.mark.parametrize("url", SIGNED_IN_PAGES)
def test_reviewer_reaches_the_working_pages(as_reviewer, url):
    assert as_reviewer.get(url).status_code == 200


def test_reviewer_cannot_launch_from_the_admin(client, reviewer):
    client.force_login(reviewer)
    response = client.get("/admin/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_launcher_reaches_the_admin(client, launcher):
    client.force_login(launcher)
    assert client.get("/admin/").status_code == 200
