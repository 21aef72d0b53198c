"""VLM judge settings, read from the environment."""
from sceneimg_site.env import env_str

SCENEIMG_VLM_BACKEND = env_str("SCENEIMG_VLM_BACKEND", "openai")
SCENEIMG_VLM_MODEL = env_str("SCENEIMG_VLM_MODEL", "gpt-4.1")
SCENEIMG_VLM_PROMPT = env_str("SCENEIMG_VLM_PROMPT", "")
