"""Crawl and ingest settings, read from the environment."""
from sceneimg_site.env import env_float, env_int, env_list, env_str

# Fetcher
SCENEIMG_FETCH_CONNECT_TIMEOUT = env_float("SCENEIMG_FETCH_CONNECT_TIMEOUT", 5.0)
SCENEIMG_FETCH_READ_TIMEOUT = env_float("SCENEIMG_FETCH_READ_TIMEOUT", 20.0)
SCENEIMG_FETCH_RETRIES = env_int("SCENEIMG_FETCH_RETRIES", 3)
SCENEIMG_FETCH_BACKOFF = env_float("SCENEIMG_FETCH_BACKOFF", 0.5)
SCENEIMG_FETCH_MAX_BYTES = env_int("SCENEIMG_FETCH_MAX_BYTES", 30 * 1024 * 1024)
SCENEIMG_FETCH_PER_HOST = env_int("SCENEIMG_FETCH_PER_HOST", 4)
SCENEIMG_FETCH_MAX_REDIRECTS = env_int("SCENEIMG_FETCH_MAX_REDIRECTS", 5)
# Hosts or CIDRs exempt from the SSRF guard: for tests and local fakes only.
SCENEIMG_FETCH_ALLOW_PRIVATE = env_list("SCENEIMG_FETCH_ALLOW_PRIVATE", "")
SCENEIMG_USER_AGENT = env_str(
    "SCENEIMG_USER_AGENT",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
)

# Ingest filters (per-run parameters override these)
SCENEIMG_MIN_WIDTH = env_int("SCENEIMG_MIN_WIDTH", 256)
SCENEIMG_MIN_HEIGHT = env_int("SCENEIMG_MIN_HEIGHT", 256)
SCENEIMG_MAX_ASPECT = env_float("SCENEIMG_MAX_ASPECT", 3.0)
SCENEIMG_MAX_PIXELS = env_int("SCENEIMG_MAX_PIXELS", 64_000_000)
SCENEIMG_THUMB_SIZE = env_int("SCENEIMG_THUMB_SIZE", 320)
SCENEIMG_JPEG_QUALITY = env_int("SCENEIMG_JPEG_QUALITY", 92)

# Baidu (outside URLs are settings so tests point them at loopback fakes)
SCENEIMG_BAIDU_IMAGE_URL = env_str("SCENEIMG_BAIDU_IMAGE_URL", "https://image.baidu.com")
SCENEIMG_BAIDU_GRAPH_URL = env_str("SCENEIMG_BAIDU_GRAPH_URL", "https://graph.baidu.com")
SCENEIMG_BAIDU_PACING = env_float("SCENEIMG_BAIDU_PACING", 1.0)
# After an anti-spider answer (antiFlag body or captcha redirect): retries, and the first back-off in
# seconds (doubling each time; default 10 x the pacing).
SCENEIMG_BAIDU_REFUSAL_RETRIES = env_int("SCENEIMG_BAIDU_REFUSAL_RETRIES", 3)
SCENEIMG_BAIDU_REFUSAL_BACKOFF = env_float("SCENEIMG_BAIDU_REFUSAL_BACKOFF", SCENEIMG_BAIDU_PACING * 10)
# A real Acs-Token from a browser session, when Baidu starts checking it.
SCENEIMG_BAIDU_ACS_TOKEN = env_str("SCENEIMG_BAIDU_ACS_TOKEN", "")
