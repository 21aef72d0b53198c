"""VLM judge settings, read from the environment.

Each `#:` comment is the setting's meaning in docs/configuration.md (scripts/config_docs.py reads it).
"""
import json

from django.core.exceptions import ImproperlyConfigured

from sceneimg_site.env import env_float, env_int, env_str

#: default backend: openai, ollama-local or ollama-cloud
SCENEIMG_VLM_BACKEND = env_str("SCENEIMG_VLM_BACKEND", "openai")
SCENEIMG_VLM_MODEL = env_str("SCENEIMG_VLM_MODEL", "gpt-4.1")  #: default `--model` for openai
SCENEIMG_VLM_OLLAMA_MODEL = env_str("SCENEIMG_VLM_OLLAMA_MODEL", "llava:latest")  #: default `--model` for ollama-*
# Image.auto_decision follows verdicts under the active prompt only.
#: the active prompt version name (e.g. `v3`); empty means the newest name in the prompts folder
SCENEIMG_VLM_PROMPT = env_str("SCENEIMG_VLM_PROMPT", "")
SCENEIMG_VLM_PROMPTS_DIR = env_str("SCENEIMG_VLM_PROMPTS_DIR", "")  #: prompt files folder; empty means `prompts/`

# Where the services are. The clients' own variables are honoured: OPENAI_BASE_URL, OLLAMA_HOST.
#: OpenAI endpoint
SCENEIMG_OPENAI_BASE_URL = env_str("SCENEIMG_OPENAI_BASE_URL", env_str("OPENAI_BASE_URL", "https://api.openai.com/v1"))
#: local Ollama
SCENEIMG_OLLAMA_HOST = env_str("SCENEIMG_OLLAMA_HOST", env_str("OLLAMA_HOST", "http://127.0.0.1:11434"))
SCENEIMG_OLLAMA_CLOUD_HOST = env_str("SCENEIMG_OLLAMA_CLOUD_HOST", "https://ollama.com")  #: Ollama cloud
# Secrets come from the environment only; they are redacted from every stored or logged text.
SCENEIMG_OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")  #: OpenAI secret; never stored or logged
SCENEIMG_OLLAMA_API_KEY = env_str("OLLAMA_API_KEY", "")  #: Ollama cloud secret; never sent to ollama-local

# Calls
SCENEIMG_VLM_TIMEOUT = env_float("SCENEIMG_VLM_TIMEOUT", 120.0)  #: seconds per request (`--timeout`), the original's 120
SCENEIMG_VLM_CONNECT_TIMEOUT = env_float("SCENEIMG_VLM_CONNECT_TIMEOUT", 5.0)  #: seconds to connect
SCENEIMG_VLM_RETRIES = env_int("SCENEIMG_VLM_RETRIES", 3)  #: extra attempts after the first
SCENEIMG_VLM_BACKOFF = env_float("SCENEIMG_VLM_BACKOFF", 1.0)  #: first backoff in seconds, doubled each attempt
SCENEIMG_VLM_BACKOFF_MAX = env_float("SCENEIMG_VLM_BACKOFF_MAX", 30.0)  #: longest backoff, seconds
SCENEIMG_VLM_RETRY_AFTER_MAX = env_float("SCENEIMG_VLM_RETRY_AFTER_MAX", 120.0)  #: cap on a server's Retry-After
SCENEIMG_VLM_WORKERS = env_int("SCENEIMG_VLM_WORKERS", 2)  #: default `--workers` (concurrent requests), the original's 2
SCENEIMG_VLM_MIN_SCORE = env_float("SCENEIMG_VLM_MIN_SCORE", 0.6)  #: default `--min-score`
SCENEIMG_VLM_MAX_OUTPUT_TOKENS = env_int("SCENEIMG_VLM_MAX_OUTPUT_TOKENS", 400)  #: reply length cap
# Larger images are downscaled (JPEG ones decoded at 1/2, 1/4 or 1/8 scale, so they may arrive between
# 3/4 of this and this); smaller JPEGs go as stored. 1024 costs OpenAI no more tokens than 768 for 4:3
# and 16:9 pictures (both are 2x2 tiles of 512).
#: longest side of the JPEG sent to the model, pixels
SCENEIMG_VLM_IMAGE_SIDE = env_int("SCENEIMG_VLM_IMAGE_SIDE", 1024)
SCENEIMG_VLM_IMAGE_QUALITY = env_int("SCENEIMG_VLM_IMAGE_QUALITY", 85)  #: JPEG quality of the image sent
SCENEIMG_VLM_BATCH_SIZE = env_int("SCENEIMG_VLM_BATCH_SIZE", 500)  #: images per RQ job with `--enqueue`

# USD per 1M tokens, [input, output]. Published list prices at the time of writing; override with
# SCENEIMG_VLM_PRICES='{"my-model": [1.0, 4.0]}' (merged over these). A model without a price gets no
# cost (null), never a made-up one. Local Ollama models cost nothing.
_DEFAULT_PRICES = {
    "gpt-4.1": [2.00, 8.00],
    "gpt-4.1-mini": [0.40, 1.60],
    "gpt-4.1-nano": [0.10, 0.40],
    "gpt-4o": [2.50, 10.00],
    "gpt-4o-mini": [0.15, 0.60],
}
try:
    #: JSON `{"model": [usd_per_M_input, usd_per_M_output]}` merged over the list prices of gpt-4.1,
    #: 4.1-mini, 4.1-nano, 4o and 4o-mini; a model without a price gets no cost, ollama-local costs 0
    SCENEIMG_VLM_PRICES = {**_DEFAULT_PRICES, **json.loads(env_str("SCENEIMG_VLM_PRICES", "{}") or "{}")}
except ValueError:
    raise ImproperlyConfigured('SCENEIMG_VLM_PRICES must be JSON like {"gpt-4.1": [2.0, 8.0]}') from None
