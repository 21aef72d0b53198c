"""The one rule for who decides (curation/decisions.py): every pair of stages, both orders of arrival."""
import ast
import itertools
from pathlib import Path

import pytest

from curation import decisions
from curation.models import AutoStage, Decision, Image

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
OPPOSITE = {Decision.KEEP: Decision.REJECT, Decision.REJECT: Decision.KEEP}


def image(n=1, **fields):
    return Image.objects.create(sha256=f"{n:064x}", file=f"f{n}", thumbnail=f"t{n}", width=10, height=10,
                                format="jpeg", byte_size=1, dhash=n, **fields)


def say(img, stage, decision):
    decisions.decide(stage, [{"id": img.pk, "decision": decision, "reason": f"{stage.label} says {decision}"}])
    img.refresh_from_db()


@pytest.mark.parametrize("first,second", list(itertools.permutations(AutoStage, 2)))
def test_the_higher_ranked_stage_decides_whatever_the_order(first, second):
    img = image()
    say(img, first, Decision.KEEP)
    say(img, second, Decision.REJECT)
    winner = max(first, second)
    expected = Decision.KEEP if winner == first else Decision.REJECT
    assert (img.auto_stage, img.auto_decision, img.final_decision) == (winner, expected, expected)
    assert img.auto_reason == f"{winner.label} says {expected}"


@pytest.mark.parametrize("stage", list(AutoStage))
def test_a_stage_may_revise_its_own_decision(stage):
    img = image()
    say(img, stage, Decision.KEEP)
    say(img, stage, Decision.REJECT)
    assert (img.auto_stage, img.auto_decision) == (stage, Decision.REJECT)


@pytest.mark.parametrize("stage", list(AutoStage))
@pytest.mark.parametrize("human", [Decision.KEEP, Decision.REJECT])
def test_a_person_beats_every_stage_before_and_after(stage, human):
    img = image(human_decision=human, final_decision=human)
    say(img, stage, OPPOSITE[human])
    assert (img.human_decision, img.final_decision, img.auto_decision) == (human, human, OPPOSITE[human])


def test_scores_are_written_even_where_the_decision_is_not():
    img = image()
    say(img, AutoStage.SEED_COPY, Decision.REJECT)
    decisions.decide(AutoStage.VLM, [{"id": img.pk, "decision": Decision.KEEP, "reason": "vlm", "vlm_score": 0.9}],
                     extra_fields=["vlm_score"])
    img.refresh_from_db()
    assert (img.auto_stage, img.auto_decision, img.vlm_score) == (AutoStage.SEED_COPY, Decision.REJECT, 0.9)


def test_release_hands_back_only_the_releasing_stages_decisions():
    released, kept_by_seed = image(1), image(2)
    say(released, AutoStage.NEAR_DUPLICATE, Decision.REJECT)
    say(kept_by_seed, AutoStage.SEED_COPY, Decision.REJECT)
    restore = {"decision": Decision.KEEP, "reason": "clip again", "stage": AutoStage.CLIP.value}
    decisions.release(AutoStage.NEAR_DUPLICATE, [{"id": i.pk, **restore} for i in (released, kept_by_seed)])
    released.refresh_from_db()
    kept_by_seed.refresh_from_db()
    assert (released.auto_stage, released.final_decision) == (AutoStage.CLIP, Decision.KEEP)
    assert (kept_by_seed.auto_stage, kept_by_seed.final_decision) == (AutoStage.SEED_COPY, Decision.REJECT)
    decisions.release(AutoStage.CLIP, [{"id": released.pk, "decision": None, "reason": "", "stage": None}])
    released.refresh_from_db()
    assert (released.auto_stage, released.auto_decision, released.final_decision) == (None, None, None)


def test_many_rows_in_one_call_each_follow_the_rule():
    imgs = [image(n) for n in range(1, 2501)]  # more than one chunk
    say(imgs[0], AutoStage.VLM, Decision.REJECT)
    decisions.decide(AutoStage.CLIP, [{"id": i.pk, "decision": Decision.KEEP, "reason": "clip"} for i in imgs])
    assert Image.objects.filter(final_decision=Decision.KEEP, auto_stage=AutoStage.CLIP).count() == 2499
    assert Image.objects.get(pk=imgs[0].pk).auto_decision == Decision.REJECT


def _writes_decisions(tree):
    """Writes that set auto_decision/auto_stage/auto_reason by keyword, or per-row dicts that carry one."""
    names = {"auto_decision", "auto_stage", "auto_reason"}
    writes = {"update", "create", "get_or_create", "update_or_create", "set_auto_decision"}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in writes
                and any(k.arg in names for k in node.keywords)):
            yield node.lineno
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if "id" in keys and keys & names:
                yield node.lineno


def test_no_stage_writes_a_decision_around_the_rule():
    offenders = []
    for pkg in ("curation", "crawl", "vlm"):
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts or path.name == "decisions.py":
                continue
            offenders += [f"{path.relative_to(ROOT)}:{line}" for line in _writes_decisions(ast.parse(path.read_text()))]
    assert offenders == []


def test_rows_that_would_not_change_are_not_written():
    """Deciding again with the same values writes nothing; only the rows that change are updated (a rescore
    with new margins flips a few decisions out of many)."""
    images = [image(n) for n in range(1, 5)]
    rows = [{"id": img.pk, "decision": Decision.KEEP, "reason": "clip: passed", "clip_indoor_margin": 0.1}
            for img in images]
    assert decisions.decide(AutoStage.CLIP, rows, extra_fields=["clip_indoor_margin"]) == 4
    assert decisions.decide(AutoStage.CLIP, rows, extra_fields=["clip_indoor_margin"]) == 0
    rows[1]["decision"], rows[2]["clip_indoor_margin"] = Decision.REJECT, 0.2
    assert decisions.decide(AutoStage.CLIP, rows, extra_fields=["clip_indoor_margin"]) == 2
    assert [(i.auto_decision, i.clip_indoor_margin) for i in Image.objects.order_by("pk")] == [
        ("keep", 0.1), ("reject", 0.1), ("keep", 0.2), ("keep", 0.1)]
