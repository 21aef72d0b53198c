"""The compare page's VLM min-score calibration applied with one click: a run that re-decides the judged
images with the suggested min-score, without asking the model again."""
import io
import re

import django_rq
import pytest
from django.contrib.auth.models import Permission
from rq import SimpleWorker

from curation.models import Image, Run
from sceneimg_site import queues
from tests.factories import image_row
from vlm.models import VlmVerdict
from vlm.prompts import active_version

# As in tests/curation/test_calibration.py: at target precision 0.8 the suggestion is 0.4.
SCORES = [i / 10 for i in range(10)]
KEEPS = [i in (2, 4, 5, 7, 8, 9) for i in range(10)]


@pytest.fixture
def judged(db, prompts, settings):
    settings.SCENEIMG_CALIBRATION_PRECISION = 0.8
    version = active_version()
    images = []
    for n, (score, keep) in enumerate(zip(SCORES, KEEPS, strict=True)):
        image = image_row(n + 1, human_decision="keep" if keep else "reject")
        VlmVerdict.objects.create(image=image, prompt_version=version, backend="openai", model="gpt-4.1",
                                  decision="keep", score=score, reason="r")
        images.append(image)
    image_row(99)  # not judged: the re-decision leaves it alone
    return version, images


def _user(django_user_model, name, *, staff, perm):
    user = django_user_model.objects.create_user(name, is_staff=staff)
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="add_run"))
    return user


def _apply_form(html):
    form = re.search(r'<form method="post" action="([^"]+)" class="apply-vlm-min-score"[^>]*>(.*?)</form>', html, re.S)
    assert form, "no apply button"
    return form.group(1), dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))


def test_one_click_applies_the_suggested_min_score_as_a_run(client, django_user_model, judged, openai_fake,
                                                            redis_conn, django_capture_on_commit_callbacks):
    version, images = judged
    client.force_login(_user(django_user_model, "lead", staff=True, perm=True))
    html = client.get(f"/vlm/compare/?a={version.pk}&b={version.pk}").content.decode()
    assert re.search(r'class="suggested">0\.4000<', html)
    action, fields = _apply_form(html)
    with django_capture_on_commit_callbacks(execute=True):  # jobs go to Redis once the run is committed
        assert client.post(action, fields).status_code == 302

    run = Run.objects.get(kind=Run.Kind.VLM)
    assert run.params["min_score"] == pytest.approx(0.4) and run.params["inputs"] == {"judged": True}
    assert run.params["images"] == 10 and run.params["prompt"] == version.name
    queue = django_rq.get_queue(queues.VLM)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE and run.counters["skipped"] == 10 and run.processed == 10
    assert openai_fake.requests == []  # decided from the stored verdicts
    rows = dict(Image.objects.filter(pk__in=[im.pk for im in images]).values_list("pk", "auto_decision"))
    assert rows == {im.pk: "keep" if score >= 0.4 else "reject" for im, score in zip(images, SCORES, strict=True)}
    assert Image.objects.get(sha256=f"{99:064x}").auto_decision is None
    # People's decisions still win.
    assert all(Image.objects.get(pk=im.pk).final_decision == ("keep" if k else "reject")
               for im, k in zip(images, KEEPS, strict=True))


def test_apply_needs_the_launch_permission(client, django_user_model, judged, openai_fake, redis_conn):
    version, _ = judged
    client.force_login(_user(django_user_model, "lead", staff=True, perm=True))
    action, fields = _apply_form(client.get(f"/vlm/compare/?a={version.pk}&b={version.pk}").content.decode())
    client.force_login(_user(django_user_model, "viewer", staff=False, perm=False))
    assert "apply-vlm-min-score" not in client.get(f"/vlm/compare/?a={version.pk}&b={version.pk}").content.decode()
    assert client.post(action, fields).status_code == 403
    assert not Run.objects.exists()


@pytest.mark.parametrize("change, named", [
    ({"vlm-min_score": "1.5"}, "min_score"),
    ({"vlm-min_score": "high"}, "min_score"),
    ({"vlm-judged": ""}, "Say what to judge"),
    ({"vlm-backend": "gemini"}, "backend"),
])
def test_bad_input_is_refused_with_a_400_naming_it(client, django_user_model, judged, openai_fake, redis_conn,
                                                   change, named):
    version, _ = judged
    client.force_login(_user(django_user_model, "lead", staff=True, perm=True))
    action, fields = _apply_form(client.get(f"/vlm/compare/?a={version.pk}&b={version.pk}").content.decode())
    response = client.post(action, {**fields, **change})
    assert response.status_code == 400 and named in response.content.decode()
    assert not Run.objects.exists()


def test_a_version_that_does_not_decide_gets_no_button(client, django_user_model, judged, settings):
    version, _ = judged
    settings.SCENEIMG_VLM_PROMPT = next(v for v in ("v1", "v2", "v3") if v != version.name)
    client.force_login(_user(django_user_model, "lead", staff=True, perm=True))
    html = client.get(f"/vlm/compare/?a={version.pk}&b={version.pk}").content.decode()
    assert "apply-vlm-min-score" not in html and "is not the active prompt version" in html


def test_the_command_line_shown_beside_it_does_the_same(judged, openai_fake):
    from django.core.management import call_command

    version, images = judged
    call_command("filter_vlm", "--judged", "--prompt", version.name, "--backend", "openai", "--model", "gpt-4.1",
                 "--min-score", "0.7", stdout=io.StringIO())
    assert openai_fake.requests == []
    run = Run.objects.get(kind=Run.Kind.VLM)
    assert run.counters["skipped"] == 10 and run.params["inputs"] == {"judged": True}
    assert [Image.objects.get(pk=im.pk).auto_decision for im in images] == ["keep" if s >= 0.7 else "reject"
                                                                            for s in SCORES]
