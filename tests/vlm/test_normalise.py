import pytest

from vlm.normalise import REASON_MAX, NormaliseError, extract_json, final_decision, normalise

VALID = '{"decision": "keep", "score": 0.8, "reason": "A lived-in kitchen", "tags": ["kitchen"]}'


@pytest.mark.parametrize("text", [
    VALID,
    f"```json\n{VALID}\n```",
    f"```\n{VALID}\n```",
    f"Here is my verdict: {VALID} Hope that helps! {{not json}}",
    f"Thinking... {{ not valid }} then {VALID}",
])
def test_json_is_found_plain_fenced_or_in_prose(text):
    assert extract_json(text)["decision"] == "keep"
    assert normalise(text).as_dict() == {"decision": "keep", "score": 0.8, "reason": "A lived-in kitchen",
                                         "tags": ["kitchen"]}


@pytest.mark.parametrize("decision", ["maybe", "", None, 1, "KEEPING"])
def test_a_decision_other_than_keep_or_reject_is_read_as_reject_as_the_original_did(decision):
    verdict = normalise({"decision": decision, "score": 0.5})
    assert verdict.decision == "reject" and verdict.notes[0].endswith("read as reject")


def test_decision_case_and_spaces_are_forgiven():
    # A keep, so that misreading it would show: anything unreadable becomes reject.
    verdict = normalise({"decision": " Keep ", "score": 0.8})
    assert (verdict.decision, verdict.notes) == ("keep", [])
    assert normalise({"decision": "REJECT", "score": 0.2}).notes == []


@pytest.mark.parametrize("raw, clamped", [(1.7, 1.0), (-0.3, 0.0), ("0.25", 0.25), (1, 1.0), (0, 0.0)])
def test_score_is_clamped_to_unit_interval(raw, clamped):
    assert normalise({"decision": "keep", "score": raw}).score == clamped


@pytest.mark.parametrize("raw", [None, "high", float("nan"), [0.5]])
def test_a_missing_or_non_numeric_score_is_read_as_zero_as_the_original_did(raw):
    verdict = normalise({"decision": "keep", "score": raw})
    assert verdict.score == 0.0 and verdict.notes[0].endswith("read as 0.0")


def test_reason_is_cut_to_160_characters_and_whitespace_collapsed():
    v = normalise({"decision": "keep", "score": 0.9, "reason": "word\n  " * 200})
    assert len(v.reason) == REASON_MAX == 160
    assert "\n" not in v.reason and "  " not in v.reason


def test_tags_are_deduplicated_and_lower_cased_in_order():
    v = normalise({"decision": "keep", "score": 0.9, "tags": ["Kitchen", "kitchen", " KITCHEN ", "Mug", "mug", 3, None]})
    assert v.tags == ["kitchen", "mug", "3"]
    assert normalise({"decision": "keep", "score": 0.9, "tags": "Desk, desk,Lamp"}).tags == ["desk", "lamp"]


def test_no_json_is_an_error():
    with pytest.raises(NormaliseError, match="no JSON object"):
        normalise("I think this image is fine.")
    with pytest.raises(NormaliseError, match="empty"):
        normalise("")


def test_final_decision_needs_keep_and_min_score():
    assert final_decision("keep", 0.6, 0.6) == "keep"
    assert final_decision("keep", 0.59, 0.6) == "reject"
    assert final_decision("reject", 0.99, 0.6) == "reject"


def test_nul_characters_are_dropped_from_reason_tags_and_errors():
    v = normalise('{"decision": "keep", "score": 0.9, "reason": "a\\u0000 kitchen\\u0000", "tags": ["mu\\u0000g", "\\u0000"]}')
    assert (v.reason, v.tags) == ("a kitchen", ["mug"])
    with pytest.raises(NormaliseError) as info:
        normalise("no\x00 verdict")
    assert "\x00" not in str(info.value)
