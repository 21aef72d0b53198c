"""Scoring and curation settings, read from the environment."""
from sceneimg_site.env import env_int, env_str

SCENEIMG_CLIP_MODEL = env_str("SCENEIMG_CLIP_MODEL", "ViT-B-32")
# A pretrained tag (Hugging Face cache), a local checkpoint path, or "none" for random weights.
SCENEIMG_CLIP_PRETRAINED = env_str("SCENEIMG_CLIP_PRETRAINED", "laion2b_s34b_b79k")
SCENEIMG_DEVICE = env_str("SCENEIMG_DEVICE", "auto")
SCENEIMG_NEARDUP_THRESHOLD = env_int("SCENEIMG_NEARDUP_THRESHOLD", 4)
SCENEIMG_EXPORT_DIR = env_str("SCENEIMG_EXPORT_DIR", "")

# --- Scoring models: where the CLIP and detector weights come from, and how they run ---
# Where fetch_models puts weights and scoring reads them: "" = the usual caches (HF_HOME, TORCH_HOME);
# a folder = <folder>/hf and <folder>/torch. Scoring never downloads: run `manage.py fetch_models`.
SCENEIMG_MODEL_DIR = env_str("SCENEIMG_MODEL_DIR", "")
# Versioned prompt set in curation/clip_prompts/<version>.json; part of the scorer key.
SCENEIMG_CLIP_PROMPTS = env_str("SCENEIMG_CLIP_PROMPTS", "v1")
# Faster R-CNN R50-FPN weights: "coco_v1", a local .pth path, or "none" (random init, uncalibrated).
# "" follows SCENEIMG_CLIP_PRETRAINED: "none" there means "none" here, else "coco_v1".
SCENEIMG_DETECTOR_WEIGHTS = env_str("SCENEIMG_DETECTOR_WEIGHTS", "")
SCENEIMG_DETECTOR_MIN_SIZE = env_int("SCENEIMG_DETECTOR_MIN_SIZE", 800)
# Images per inference batch; 0 = 256 on CUDA, 32 on the CPU.
SCENEIMG_CLIP_BATCH_SIZE = env_int("SCENEIMG_CLIP_BATCH_SIZE", 0)
# Images per RQ job when filter_clip --enqueue splits the work.
SCENEIMG_CLIP_JOB_SIZE = env_int("SCENEIMG_CLIP_JOB_SIZE", 2048)
# Torch intra-op threads on the CPU; 0 = one per core.
SCENEIMG_TORCH_THREADS = env_int("SCENEIMG_TORCH_THREADS", 0)
# Above this many matching images, "apply to everything matching" becomes a background run.
SCENEIMG_REVIEW_SYNC_LIMIT = env_int("SCENEIMG_REVIEW_SYNC_LIMIT", 500)
