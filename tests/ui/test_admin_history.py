"""The admin shows history and never edits it: decisions, reviews, scores, verdicts, sightings, prompts."""
import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from crawl.models import Source
from curation.models import FilterScore, Image, Review, Run
from vlm.models import PromptVersion, VlmVerdict

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", password="pw-12345678"))
    return client


@pytest.fixture
def history():
    image = Image.objects.create(sha256="a" * 64, file="f", thumbnail="t", width=10, height=10, format="jpeg",
                                 byte_size=1, dhash=1, auto_decision="keep", final_decision="keep")
    pv = PromptVersion.objects.new_version(name="v1", system_text="Judge.", user_template="JSON please.")[0]
    run = Run.objects.create(kind=Run.Kind.IMPORT, params={})
    return {
        "image": image,
        "review": Review.objects.create(image=image, old=None, new="keep"),
        "filterscore": FilterScore.objects.create(image=image, scorer_key="k", scores={}, indoor_margin=0.1,
                                                  passed=True),
        "source": Source.objects.create(image=image, provider="url_list", url="http://example.test/a.jpg",
                                        outcome="stored"),
        "promptversion": pv,
        "vlmverdict": VlmVerdict.objects.create(image=image, prompt_version=pv, backend="openai", model="m",
                                                decision="keep", score=0.9),
        "run": run,
    }


@pytest.mark.parametrize("app,model", [("curation", "image"), ("curation", "review"), ("curation", "filterscore"),
                                       ("crawl", "source"), ("vlm", "promptversion"), ("vlm", "vlmverdict"),
                                       ("curation", "run")])
def test_history_is_viewable_but_cannot_be_added_changed_or_deleted(admin_client, history, app, model):
    obj = history[model]
    assert admin_client.get(reverse(f"admin:{app}_{model}_changelist")).status_code == 200
    change_url = reverse(f"admin:{app}_{model}_change", args=[obj.pk])
    page = admin_client.get(change_url)
    assert page.status_code == 200 and b'type="submit"' not in page.content.split(b'id="content-main"')[1].split(
        b"object-tools")[0]
    assert admin_client.get(reverse(f"admin:{app}_{model}_add")).status_code == 403
    assert admin_client.post(reverse(f"admin:{app}_{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_a_posted_decision_in_the_admin_changes_nothing(admin_client, history):
    image = history["image"]
    response = admin_client.post(reverse("admin:curation_image_change", args=[image.pk]),
                                 {"human_decision": "reject", "final_decision": "reject"})
    assert response.status_code == 403
    image.refresh_from_db()
    assert (image.human_decision, image.final_decision) == (None, "keep")
    assert Review.objects.count() == 1


def test_the_image_list_sends_decisions_to_the_image_page(admin_client, history):
    page = admin_client.get(reverse("admin:curation_image_changelist"))
    assert reverse("curation:image_detail", args=[history["image"].pk]).encode() in page.content


def test_runs_can_still_be_cancelled_from_the_admin(admin_client, history, redis_conn):
    run = history["run"]
    response = admin_client.post(reverse("admin:curation_run_changelist"),
                                 {"action": "cancel_runs", "_selected_action": [run.pk]})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED


def test_a_prompt_version_never_changes_in_place(history):
    pv = history["promptversion"]
    pv.system_text = "Something else."
    with pytest.raises(ValueError, match="immutable"):
        pv.save()
    pv.refresh_from_db()
    assert pv.system_text == "Judge."


def test_new_version_from_this_one_writes_a_new_row(admin_client, history):
    pv = history["promptversion"]
    url = reverse("admin:vlm_promptversion_new_version", args=[pv.pk])
    form = admin_client.get(url)
    assert form.status_code == 200 and b"Judge." in form.content
    response = admin_client.post(url, {"name": "v1", "system_text": "Judge harder.", "user_template": "JSON please."})
    assert response.status_code == 302
    assert PromptVersion.objects.count() == 2
    pv.refresh_from_db()
    assert pv.system_text == "Judge."
    newest = PromptVersion.objects.latest("id")
    assert newest.system_text == "Judge harder." and newest.content_hash != pv.content_hash
    # The same text again is the same version, not a third row.
    admin_client.post(url, {"name": "v1", "system_text": "Judge harder.", "user_template": "JSON please."})
    assert PromptVersion.objects.count() == 2
