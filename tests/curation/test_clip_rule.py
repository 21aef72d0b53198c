"""The decision rule on injected scores, the scorer key and the prompt set: no model needed."""
import numpy as np
import pytest

from curation.clip import ClipSpec, clip_key, load_prompt_set, resolve_clip_spec
from curation.scoring import DecisionRule, csv_columns, margins, margins_many, rounded_scores


def scores(indoor, outdoor, tidy=0.2, messy=0.2, moderate=0.2):
    return {"indoor": indoor, "outdoor": outdoor, "tidy": tidy, "messy": messy, "moderate": moderate}


def test_margins_are_indoor_minus_outdoor_and_moderate_minus_the_larger_extreme():
    indoor, moderate = margins(scores(0.30, 0.25, tidy=0.21, messy=0.24, moderate=0.26))
    assert indoor == pytest.approx(0.05)
    assert moderate == pytest.approx(0.02)


def test_indoor_margin_threshold_is_inclusive():
    rule = DecisionRule(indoor_margin=0.02)
    assert rule.decide(0.02, -1.0)[0] is True
    passed, reason = rule.decide(0.0199, 0.5)
    assert passed is False and "indoor margin 0.0199 < 0.02" in reason


def test_moderate_margin_is_off_by_default_and_applies_when_given():
    assert DecisionRule().decide(0.1, -0.5)[0] is True  # a very tidy room passes without the flag
    rule = DecisionRule(moderate_margin=0.0)
    assert rule.decide(0.1, 0.0)[0] is True
    passed, reason = rule.decide(0.1, -0.01)
    assert passed is False and "moderate margin" in reason


def test_object_count_bounds_apply_only_when_given():
    assert DecisionRule().needs_detector is False
    assert DecisionRule().decide(0.1, 0.0, None)[0] is True
    low = DecisionRule(object_count_min=8)
    assert low.needs_detector
    assert low.decide(0.1, 0.0, 8)[0] is True
    passed, reason = low.decide(0.1, 0.0, 7)
    assert not passed and "7 objects < 8" in reason
    both = DecisionRule(object_count_min=2, object_count_max=5)
    assert [both.decide(0.1, 0.0, n)[0] for n in (1, 2, 5, 6)] == [False, True, True, False]
    assert both.decide(0.1, 0.0, None)[0] is False  # asked for a count, none measured


def test_every_failure_is_named_in_the_reason():
    rule = DecisionRule(indoor_margin=0.1, moderate_margin=0.1, object_count_max=3)
    passed, reason = rule.decide(0.0, 0.0, 10)
    assert not passed
    assert reason.startswith("clip: ") and "indoor" in reason and "moderate" in reason and "10 objects > 3" in reason


@pytest.mark.parametrize("rule", [DecisionRule(indoor_margin=0.02), DecisionRule(indoor_margin=-0.01, moderate_margin=0.0)])
def test_the_array_rule_gives_each_image_what_the_one_image_rule_gives(rule):
    labels = ["indoor", "outdoor", "tidy", "messy", "moderate"]
    sims = np.random.default_rng(3).normal(0.2, 0.03, size=(500, 5)).astype(np.float32)
    sims[0] = [0.25, 0.23, 0.2, 0.2, 0.2]  # an indoor margin at the threshold, give or take the rounding
    rounded = rounded_scores(sims)
    indoor, moderate = margins_many(rounded, labels)
    passed, reasons = rule.decide_many(indoor, moderate)
    one_by_one = [rule.decide(*margins(dict(zip(labels, row, strict=True)))) for row in rounded.tolist()]
    assert list(zip(passed.tolist(), reasons.tolist(), strict=True)) == one_by_one
    assert 0 < passed.sum() < 500
    # Stored values are the 6-decimal roundings Python's round() gives.
    assert rounded.ravel().tolist() == [round(float(v), 6) for v in sims.ravel()]


def test_prompt_set_is_versioned_and_complete():
    prompts = load_prompt_set("v1")
    assert prompts.version == "v1"
    assert set(prompts.label_names) == {"indoor", "outdoor", "tidy", "messy", "moderate"}
    assert all(prompts.labels[label] for label in prompts.label_names)


def test_scorer_key_names_model_weights_and_prompt_version():
    spec = resolve_clip_spec("ViT-B-32", "none")
    assert spec.uncalibrated
    assert clip_key(spec, "v1") == "clip:ViT-B-32:none:prompts-v1"
    tagged = resolve_clip_spec("ViT-B-32", "laion2b_s34b_b79k")
    assert clip_key(tagged, "v1") == "clip:ViT-B-32:laion2b_s34b_b79k:prompts-v1"


def test_openai_weights_use_quickgelu_and_laion_weights_do_not():
    assert resolve_clip_spec("ViT-B-32", "openai").quick_gelu is True
    assert resolve_clip_spec("ViT-B-32", "laion2b_s34b_b79k").quick_gelu is False
    # Naming the quickgelu architecture already is not forced twice.
    assert ClipSpec("ViT-B-32-quickgelu", "openai", "ViT-B-32-quickgelu", "openai", {"quick_gelu": True}).quick_gelu is False


def test_a_local_checkpoint_path_is_accepted_and_named_in_the_key(tmp_path):
    ckpt = tmp_path / "my-clip.pt"
    ckpt.write_bytes(b"0" * 10)
    spec = resolve_clip_spec("ViT-B-32", str(ckpt))
    assert spec.checkpoint_path == str(ckpt)
    assert clip_key(spec, "v1") == "clip:ViT-B-32:file-my-clip.pt-10:prompts-v1"


def test_csv_columns_follow_the_original_log():
    labels = load_prompt_set("v1").label_names
    assert csv_columns(labels) == [
        "file", "image_id", "indoor", "outdoor", "tidy", "messy", "moderate",
        "indoor_margin", "moderate_margin", "object_count", "decision",
    ]


def test_fetch_models_with_random_weights_has_nothing_to_fetch(capsys):
    from django.core.management import call_command

    call_command("fetch_models")
    out = capsys.readouterr().out
    assert "SCENEIMG_CLIP_PRETRAINED=none" in out and "nothing to fetch" in out
