"""The embedding key web requests read off the settings is the one the scorer writes under."""
import pytest

from curation.clip import configured_embedding_key, embedding_key, resolve_clip_spec


@pytest.mark.parametrize("pretrained", ["none", "", "openai", "laion2b_s34b_b79k", "file"])
def test_the_key_from_settings_is_the_scorers_key(settings, tmp_path, pretrained):
    if pretrained == "file":
        checkpoint = tmp_path / "clip.pt"
        checkpoint.write_bytes(b"x" * 123)
        pretrained = str(checkpoint)
    settings.SCENEIMG_CLIP_MODEL = "ViT-B-32"
    settings.SCENEIMG_CLIP_PRETRAINED = pretrained
    assert configured_embedding_key() == embedding_key(resolve_clip_spec())
