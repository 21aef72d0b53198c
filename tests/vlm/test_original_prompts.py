"""Prompts and verdicts as in the original filter_vlm.py: its three prompt versions' rules, its prompt files
imported as they are, room_tags and object_tags kept apart, invalid answers coerced."""
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.fakes import vlm_common
from vlm.models import PromptVersion, VlmVerdict
from vlm.normalise import normalise, split_tags
from vlm.prompts import read_prompt_file

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


def text_of(version):
    p = read_prompt_file(PROMPTS / f"{version}.toml")
    return " ".join((p.system + " " + p.user).split()).lower()


def test_v1_carries_the_original_v1_rules():
    t = text_of("v1")
    for rule in ("0.60 to 0.79, keep", "0.40 to 0.59, reject", "virtual renders", "unsafe scenes",
                 "\"room_tags\"", "\"object_tags\"", "at least 8 different objects", "floor plans"):
        assert rule in t, rule


def test_v2_carries_the_original_v2_rules():
    t = text_of("v2")
    for rule in ("proof of indoors", "image quality", "safety", "if you cannot confirm the indoor cues",
                 "fewer than 8 objects, reject", "\"laundry\", \"hallway\"", "\"spray bottle\", \"trash bin\""):
        assert rule in t, rule


def test_v3_carries_the_original_v3_rules():
    t = text_of("v3")
    for rule in ("close or medium views", "less than 30% of the frame", "too much", "too little",
                 "out of reach", "unsafe (broken glass, liquids, food waste)", "task potential",
                 "image quality", "if any point fails, reject"):
        assert rule in t, rule


ORIGINAL_FILE = '''raise SystemExit("this file must never run")
SYSTEM_PROMPT = r"""
You are a robotics dataset curator. Return JSON with decision, score, reason, room_tags, object_tags.
"""

USER_PROMPT_TEMPLATE = r"""
Judge the following candidate image. Answer with JSON only.
"""
'''


@pytest.mark.django_db
def test_an_original_prompt_file_is_imported_as_it_is_without_running_it(tmp_path, capsys):
    path = tmp_path / "filter_vlm_v7.txt"
    path.write_text(ORIGINAL_FILE, encoding="utf-8")
    call_command("sync_prompts", "--from-original", str(path))
    version = PromptVersion.objects.get(name="original-v7")
    assert version.system_text == ("You are a robotics dataset curator. Return JSON with decision, score, reason, "
                                   "room_tags, object_tags.")
    assert version.user_template == "Judge the following candidate image. Answer with JSON only."
    call_command("sync_prompts", "--from-original", str(path), "--name", "original-v7")
    assert PromptVersion.objects.count() == 1 and "unchanged" in capsys.readouterr().out
    (tmp_path / "broken.txt").write_text('SYSTEM_PROMPT = f"{1}"\nUSER_PROMPT_TEMPLATE = "u"\n')
    with pytest.raises(CommandError, match="SYSTEM_PROMPT is not a plain string literal"):
        call_command("sync_prompts", "--from-original", str(tmp_path / "broken.txt"))
    (tmp_path / "half.txt").write_text('SYSTEM_PROMPT = "s"\n')
    with pytest.raises(CommandError, match="no USER_PROMPT_TEMPLATE"):
        call_command("sync_prompts", "--from-original", str(tmp_path / "half.txt"))


def test_room_and_object_tags_are_kept_apart():
    v = normalise({"decision": "keep", "score": "0.82", "reason": "desk",
                   "room_tags": "Office; Study/office", "object_tags": ["Cup", "cup", "Pen", "Keyboard"]})
    assert (v.room_tags, v.object_tags) == (["office", "study"], ["cup", "pen", "keyboard"])
    assert split_tags(v.tags) == ([], ["office", "study"], ["cup", "pen", "keyboard"])
    many = normalise({"decision": "keep", "score": 1, "room_tags": [f"r{i}" for i in range(12)],
                      "object_tags": [f"o{i}" for i in range(12)]})
    assert len(many.room_tags) == 8 and len(many.object_tags) == 10  # the original's limits


def original_reply(mode, image_bytes):
    verdict = {"decision": "Maybe" if mode == "invalid_decision" else "keep", "score": "high",
               "reason": "Lived-in office desk", "room_tags": ["Office"], "object_tags": "cup, pen、Keyboard"}
    return json.dumps(verdict)


@pytest.mark.django_db
def test_verdicts_and_the_jsonl_keep_room_and_object_tags_and_coerced_answers(
        prompts, openai_fake, make_images, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(vlm_common, "reply_text", original_reply)
    images = make_images(2)
    openai_fake.script = ["invalid_decision"]
    out = tmp_path / "o.jsonl"
    call_command("filter_vlm", "--decision", "any", "-o", str(out), "--workers", "1")
    rows = {v.image_id: v for v in VlmVerdict.objects.all()}
    assert all(v.error == "" and v.score == 0.0 for v in rows.values())  # "high" is read as 0.0
    assert sorted(v.decision for v in rows.values()) == ["keep", "reject"]  # "Maybe" is read as reject
    assert any("Maybe" in v.raw_response for v in rows.values())  # the raw answer is kept for the audit
    assert all(split_tags(v.tags)[1:] == (["office"], ["cup", "pen", "keyboard"]) for v in rows.values())
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["image_id"] for line in lines] == [im.pk for im in images]
    for line in lines:
        assert line["room_tags"] == ["office"] and line["object_tags"] == ["cup", "pen", "keyboard"]
        assert line["raw_response"]["room_tags"] == ["office"] and line["final_decision"] == "reject"
