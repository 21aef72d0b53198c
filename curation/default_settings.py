"""Scoring and curation settings, read from the environment.

Each `#:` comment is the setting's meaning in docs/configuration.md (scripts/config_docs.py reads it).
"""
from sceneimg_site.env import env_bool, env_float, env_int, env_str

#: open_clip architecture
SCENEIMG_CLIP_MODEL = env_str("SCENEIMG_CLIP_MODEL", "ViT-B-32")
#: a pretrained tag (Hugging Face cache; `openai`, the original's ViT-B/32 weights, builds the QuickGELU
#: variant), a local checkpoint path, or `none`: seeded random weights, whose scores are marked uncalibrated
SCENEIMG_CLIP_PRETRAINED = env_str("SCENEIMG_CLIP_PRETRAINED", "openai")
#: `auto` (CUDA when present, else the CPU), `cpu`, `cuda` or `cuda:N`
SCENEIMG_DEVICE = env_str("SCENEIMG_DEVICE", "auto")
#: images whose 64-bit dHashes differ by at most this many bits share a near-duplicate group
SCENEIMG_NEARDUP_THRESHOLD = env_int("SCENEIMG_NEARDUP_THRESHOLD", 4)
#: where web-launched exports are written; empty means `<SCENEIMG_VAR_DIR>/exports`
SCENEIMG_EXPORT_DIR = env_str("SCENEIMG_EXPORT_DIR", "")

# --- Scoring models: where the CLIP and detector weights come from, and how they run ---
# Scoring never downloads: run `manage.py fetch_models`.
#: where fetch_models puts weights and scoring reads them (`<dir>/hf`, `<dir>/torch`, `<dir>/clip`); empty
#: means the usual caches (HF_HOME, TORCH_HOME)
SCENEIMG_MODEL_DIR = env_str("SCENEIMG_MODEL_DIR", "")
#: CLIP prompt set `curation/clip_prompts/<version>.json`, part of the scorer key: `v1` the original's sentences,
#: `v2` SceneImg's; add a version, never edit one
SCENEIMG_CLIP_PROMPTS = env_str("SCENEIMG_CLIP_PROMPTS", "v1")
#: Faster R-CNN R50-FPN v2 weights (the original's detector): `coco_v1`, a local .pth path, or `none` (random,
#: uncalibrated); empty follows SCENEIMG_CLIP_PRETRAINED (`none` there means `none` here, else `coco_v1`)
SCENEIMG_DETECTOR_WEIGHTS = env_str("SCENEIMG_DETECTOR_WEIGHTS", "")
#: the detector's input short side, pixels
SCENEIMG_DETECTOR_MIN_SIZE = env_int("SCENEIMG_DETECTOR_MIN_SIZE", 800)
#: images per inference batch; 0 means 256 on CUDA, 32 on the CPU
SCENEIMG_CLIP_BATCH_SIZE = env_int("SCENEIMG_CLIP_BATCH_SIZE", 0)
#: images per RQ job when `filter_clip --enqueue` splits the work
SCENEIMG_CLIP_JOB_SIZE = env_int("SCENEIMG_CLIP_JOB_SIZE", 2048)
#: torch intra-op threads on the CPU; 0 means one per core
SCENEIMG_TORCH_THREADS = env_int("SCENEIMG_TORCH_THREADS", 0)
#: above this many matching images, "keep/reject all matching" becomes a background run
SCENEIMG_REVIEW_SYNC_LIMIT = env_int("SCENEIMG_REVIEW_SYNC_LIMIT", 500)

# --- The pipeline: stages that start each other (docs/runs-and-export.md) ---
#: crawls and imports run as a pipeline unless told otherwise: CLIP after them, then the VLM for what CLIP kept
SCENEIMG_PIPELINE = env_bool("SCENEIMG_PIPELINE", False)
#: the CLIP indoor margin a pipeline's CLIP stage keeps at (indoor - outdoor >= this)
SCENEIMG_PIPELINE_INDOOR_MARGIN = env_float("SCENEIMG_PIPELINE_INDOOR_MARGIN", 0.02)

# --- Embeddings, search and the learned scorer (docs/learning.md) ---
#: where the vector index and its embedding segments live; empty means `<SCENEIMG_VAR_DIR>/vectors`
SCENEIMG_VECTOR_DIR = env_str("SCENEIMG_VECTOR_DIR", "")
#: below this many embeddings search is exact (a matrix product); from here on a faiss IVF index answers
SCENEIMG_INDEX_EXACT_BELOW = env_int("SCENEIMG_INDEX_EXACT_BELOW", 50000)
#: IVF lists probed per query: more is slower and closer to exact search
SCENEIMG_INDEX_NPROBE = env_int("SCENEIMG_INDEX_NPROBE", 32)
#: how many of the most similar images a text search or "more like this" ranks
SCENEIMG_SEARCH_RESULTS = env_int("SCENEIMG_SEARCH_RESULTS", 1000)
#: two images whose embeddings have at least this cosine similarity are content duplicates
SCENEIMG_CONTENT_DUP_THRESHOLD = env_float("SCENEIMG_CONTENT_DUP_THRESHOLD", 0.95)
#: human decisions (with embeddings) needed before the learned scorer trains; each class needs a tenth of it
SCENEIMG_LEARNED_MIN_DECISIONS = env_int("SCENEIMG_LEARNED_MIN_DECISIONS", 100)
#: retrain the learned scorer after this many new human decisions
SCENEIMG_LEARNED_RETRAIN_EVERY = env_int("SCENEIMG_LEARNED_RETRAIN_EVERY", 50)
#: the learned scorer decides (stage between CLIP and the VLM) only when its held-out AUC is at least this
SCENEIMG_LEARNED_MIN_AUC = env_float("SCENEIMG_LEARNED_MIN_AUC", 0.85)
#: calibration suggests the threshold with the most recall among those reaching this precision
SCENEIMG_CALIBRATION_PRECISION = env_float("SCENEIMG_CALIBRATION_PRECISION", 0.9)

# --- Media storage (docs/deployment.md#object-storage) ---
#: S3 bucket that holds media (images, thumbnails, seeds, web exports); empty keeps media on this machine's
#: disk under MEDIA_ROOT. The bucket stays private: browsers get short-lived presigned URLs
SCENEIMG_S3_BUCKET = env_str("SCENEIMG_S3_BUCKET", "")
#: endpoint of an S3-compatible server (SeaweedFS, MinIO, Ceph, R2, ...), e.g. `http://10.0.0.5:8333`; empty means AWS
SCENEIMG_S3_ENDPOINT_URL = env_str("SCENEIMG_S3_ENDPOINT_URL", "")
#: the bucket's region (`us-east-1` suits most S3-compatible servers)
SCENEIMG_S3_REGION = env_str("SCENEIMG_S3_REGION", "us-east-1")
#: access key id; empty uses boto3's usual chain (AWS_ACCESS_KEY_ID, ~/.aws, an instance role)
SCENEIMG_S3_ACCESS_KEY = env_str("SCENEIMG_S3_ACCESS_KEY", "")
#: secret access key; empty uses boto3's usual chain
SCENEIMG_S3_SECRET_KEY = env_str("SCENEIMG_S3_SECRET_KEY", "")
#: key prefix inside the bucket (e.g. `sceneimg/prod`), so several deployments can share one bucket
SCENEIMG_S3_PREFIX = env_str("SCENEIMG_S3_PREFIX", "")
#: `path` or `virtual` bucket addressing; empty means `path` with an endpoint URL, else `virtual`
SCENEIMG_S3_ADDRESSING_STYLE = env_str("SCENEIMG_S3_ADDRESSING_STYLE", "")
#: seconds to connect to, and to wait for an answer from, the S3 endpoint (each of up to 4 attempts)
SCENEIMG_S3_TIMEOUT = env_int("SCENEIMG_S3_TIMEOUT", 30)
#: seconds a presigned image or download URL stays valid
SCENEIMG_S3_URL_EXPIRY = env_int("SCENEIMG_S3_URL_EXPIRY", 300)
#: `redirect`: browsers fetch images from the bucket by presigned URL; `proxy`: the app streams them (for an
#: endpoint only the servers can reach)
SCENEIMG_MEDIA_DELIVERY = env_str("SCENEIMG_MEDIA_DELIVERY", "redirect")

# --- Export limits (docs/runs-and-export.md#limits-and-retention) ---
#: web exports (zip) go to media storage under `exports/` instead of SCENEIMG_EXPORT_DIR; empty means yes
#: when SCENEIMG_S3_BUCKET is set (every machine then sees them), else no
SCENEIMG_EXPORT_TO_STORAGE = env_str("SCENEIMG_EXPORT_TO_STORAGE", "")
#: days a finished web export's file is kept; `purge_exports` deletes older ones (0 keeps them for ever)
SCENEIMG_EXPORT_RETENTION_DAYS = env_float("SCENEIMG_EXPORT_RETENTION_DAYS", 7)
#: export runs one user may have queued or running at once (0: no limit)
SCENEIMG_EXPORT_MAX_ACTIVE_PER_USER = env_int("SCENEIMG_EXPORT_MAX_ACTIVE_PER_USER", 2)
#: images per part job of a queued export: a larger one is written by several jobs that the `export` workers
#: share, then put together by the last (parquet, which reads no images, is always one job)
SCENEIMG_EXPORT_PART_SIZE = env_int("SCENEIMG_EXPORT_PART_SIZE", 5000)
