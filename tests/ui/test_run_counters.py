"""Run counters read as words and numbers rounded for people."""
import pytest

from curation.models import Run
from curation.run_views import counter_items

pytestmark = pytest.mark.django_db


def test_counters_are_named_in_words_and_rounded():
    run = Run(kind=Run.Kind.VLM, counters={"cost_usd": 0.08040800000000001, "unpriced_verdicts": 3,
                                          "stored": 12345, "mean_margin": -0.0038899999999999976, "_seeds": 2})
    assert counter_items(run) == [("cost", "$0.0804"), ("mean margin", "-0.00389"), ("stored", "12,345"),
                                  ("unpriced verdicts", "3")]


def test_the_runs_page_shows_them(client, django_user_model):
    Run.objects.create(kind=Run.Kind.VLM, counters={"cost_usd": 0.08040800000000001})
    client.force_login(django_user_model.objects.create_user("viewer", password="pw-12345678"))
    html = client.get("/runs/").content.decode()
    assert "cost&nbsp;$0.0804" in html and "0.0804080" not in html
