"""Prompt files become versions by content hash; a version, once made, never changes."""
import shutil
from pathlib import Path

import pytest
from django.conf import settings as dj_settings
from django.core.management import call_command

from curation.models import Image
from vlm.models import PromptVersion, VlmVerdict
from vlm.prompts import (
    PromptError,
    active_version,
    latest_version,
    read_prompt_file,
    render_user,
    sync_prompts,
)

REPO_PROMPTS = Path(dj_settings.BASE_DIR) / "prompts"


@pytest.fixture
def prompt_dir(tmp_path, settings):
    d = tmp_path / "prompts"
    shutil.copytree(REPO_PROMPTS, d)
    settings.SCENEIMG_VLM_PROMPTS_DIR = str(d)
    settings.SCENEIMG_VLM_PROMPT = ""
    return d


def test_shipped_prompts_parse_and_sceneimgs_own_rejects_more():
    files = [read_prompt_file(REPO_PROMPTS / f"v{n}.toml") for n in (1, 2, 3)]
    assert [f.name for f in files] == ["v1", "v2", "v3"]  # the original's (tests/vlm/test_original_prompts.py)
    own = read_prompt_file(REPO_PROMPTS / "sceneimg-checklist.toml").system.lower()
    for must in ("render", "advertisement", "collage", "watermark", "people", "outdoor", "moderate", "grasp"):
        assert must in own


def test_sync_creates_then_is_idempotent(db, prompt_dir):
    created, unchanged = sync_prompts()
    assert sorted(v.name for v in created) == ["sceneimg-checklist", "v1", "v2", "v3"] and unchanged == []
    created, unchanged = sync_prompts()
    assert created == [] and len(unchanged) == 4
    assert PromptVersion.objects.count() == 4


def test_an_edited_file_becomes_a_new_version_and_the_used_old_one_is_kept_unchanged(db, prompt_dir, make_images):
    sync_prompts()
    old = latest_version("v2")
    old_text, old_hash = old.system_text, old.content_hash
    image = make_images(1)[0]
    VlmVerdict.objects.create(image=image, prompt_version=old, backend="openai", model="m", decision="keep", score=1)

    path = prompt_dir / "v2.toml"
    path.write_text(path.read_text().replace("You curate", "You carefully curate"))
    created, _ = sync_prompts()
    assert [v.name for v in created] == ["v2"]
    new = latest_version("v2")
    assert new.pk != old.pk and new.content_hash != old_hash and "You carefully curate" in new.system_text
    old.refresh_from_db()
    assert (old.system_text, old.content_hash) == (old_text, old_hash)
    assert old.verdicts.count() == 1
    assert PromptVersion.objects.filter(name="v2").count() == 2
    assert Image.objects.count() == 1


def test_reverting_a_file_finds_its_old_version_again(db, prompt_dir):
    sync_prompts()
    path = prompt_dir / "v1.toml"
    original = path.read_text()
    path.write_text(original.replace("several items", "many items"))
    sync_prompts()
    path.write_text(original)
    created, _ = sync_prompts()
    assert created == [] and PromptVersion.objects.filter(name="v1").count() == 2


def test_active_version_is_the_setting_else_the_newest_name(db, prompt_dir, settings):
    (prompt_dir / "v10.toml").write_text('system = "ten"\nuser = "u"\n')
    sync_prompts()
    assert active_version().name == "v10"  # natural order: v10 after v3
    settings.SCENEIMG_VLM_PROMPT = "v2"
    assert active_version().name == "v2"


def test_txt_prompts_and_bad_files(db, prompt_dir):
    (prompt_dir / "v4.txt").write_text("Judge the photo.\n")
    created, _ = sync_prompts()
    v4 = [v for v in created if v.name == "v4"][0]
    assert v4.system_text == "Judge the photo." and "JSON" in v4.user_template
    (prompt_dir / "v5.toml").write_text('user = "no system"\n')
    with pytest.raises(PromptError, match="v5.toml: needs a non-empty `system`"):
        sync_prompts()


def test_unknown_version_name_is_a_clear_error(db, prompt_dir):
    sync_prompts()
    with pytest.raises(PromptError, match="no prompt version named 'v9'; known: sceneimg-checklist, v1, v2, v3"):
        latest_version("v9")


def test_render_user_fills_width_and_height(db, prompt_dir):
    sync_prompts()
    assert "640 x 480" in render_user(latest_version("sceneimg-checklist"), width=640, height=480)


def test_sync_prompts_command(db, prompt_dir, capsys):
    call_command("sync_prompts")
    out = capsys.readouterr().out
    assert out.count("new version") == 4 and "active prompt: v3" in out
