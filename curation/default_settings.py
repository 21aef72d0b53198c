"""Scoring and curation settings, read from the environment."""
from sceneimg_site.env import env_int, env_str

SCENEIMG_CLIP_MODEL = env_str("SCENEIMG_CLIP_MODEL", "ViT-B-32")
# A pretrained tag (Hugging Face cache), a local checkpoint path, or "none" for random weights.
SCENEIMG_CLIP_PRETRAINED = env_str("SCENEIMG_CLIP_PRETRAINED", "laion2b_s34b_b79k")
SCENEIMG_DEVICE = env_str("SCENEIMG_DEVICE", "auto")
SCENEIMG_NEARDUP_THRESHOLD = env_int("SCENEIMG_NEARDUP_THRESHOLD", 4)
SCENEIMG_EXPORT_DIR = env_str("SCENEIMG_EXPORT_DIR", "")
