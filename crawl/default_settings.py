"""Crawl and ingest settings, read from the environment.

Each `#:` comment is the setting's meaning in docs/configuration.md (scripts/config_docs.py reads it).
"""
from sceneimg_site.env import env_bool, env_float, env_int, env_list, env_str

# Fetcher
#: seconds to wait for a connection
SCENEIMG_FETCH_CONNECT_TIMEOUT = env_float("SCENEIMG_FETCH_CONNECT_TIMEOUT", 5.0)
#: seconds to wait for each read of the response
SCENEIMG_FETCH_READ_TIMEOUT = env_float("SCENEIMG_FETCH_READ_TIMEOUT", 20.0)
#: retries after the first attempt on connection errors, cut-short bodies, 429 and 5xx
SCENEIMG_FETCH_RETRIES = env_int("SCENEIMG_FETCH_RETRIES", 3)
#: first backoff in seconds; doubles each retry, with jitter
SCENEIMG_FETCH_BACKOFF = env_float("SCENEIMG_FETCH_BACKOFF", 0.5)
# Room for the longest Retry-After honoured (a minute) and one more attempt.
#: seconds one fetch may take in all: connecting, redirects, retries and their waits, and the transfer
SCENEIMG_FETCH_DEADLINE = env_float("SCENEIMG_FETCH_DEADLINE", 120.0)
#: least average bytes per second a response body must keep up once it has run SCENEIMG_FETCH_RATE_WINDOW; 0: no minimum
SCENEIMG_FETCH_MIN_RATE = env_int("SCENEIMG_FETCH_MIN_RATE", 2048)
#: seconds into a response body before its rate is judged
SCENEIMG_FETCH_RATE_WINDOW = env_float("SCENEIMG_FETCH_RATE_WINDOW", 10.0)
#: size cap in bytes, enforced while streaming
SCENEIMG_FETCH_MAX_BYTES = env_int("SCENEIMG_FETCH_MAX_BYTES", 30 * 1024 * 1024)
#: requests at once per host, all workers on all machines together (with SCENEIMG_FETCH_SHARED_LIMITS)
SCENEIMG_FETCH_PER_HOST = env_int("SCENEIMG_FETCH_PER_HOST", 4)
#: keep per-host limits, Retry-After pauses, anti-spider back-off and Baidu pacing in Redis, shared by every worker; off: per process
SCENEIMG_FETCH_SHARED_LIMITS = env_bool("SCENEIMG_FETCH_SHARED_LIMITS", True)
#: seconds a per-host slot stays taken after its worker stops renewing it (a killed worker's slots free up after this)
SCENEIMG_FETCH_SLOT_LEASE = env_float("SCENEIMG_FETCH_SLOT_LEASE", 15.0)
#: redirects followed; the SSRF guard checks each hop
SCENEIMG_FETCH_MAX_REDIRECTS = env_int("SCENEIMG_FETCH_MAX_REDIRECTS", 5)
#: hosts, addresses or CIDRs exempt from the SSRF guard, best with a port (`127.0.0.1:8765`; without one every port is open): for tests and local fakes only
SCENEIMG_FETCH_ALLOW_PRIVATE = env_list("SCENEIMG_FETCH_ALLOW_PRIVATE", "")
#: User-Agent sent with every request
SCENEIMG_USER_AGENT = env_str(
    "SCENEIMG_USER_AGENT",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
)

# Server folders the web forms may name (the command line may name any folder)
#: folders whose subfolders a folder import launched from the web may read; empty means `<SCENEIMG_VAR_DIR>/import`
SCENEIMG_IMPORT_ROOTS = env_list("SCENEIMG_IMPORT_ROOTS", "")
#: folders under which a crawl launched from the web may write its `output`; empty means `<SCENEIMG_VAR_DIR>/crawl-output`
SCENEIMG_OUTPUT_ROOTS = env_list("SCENEIMG_OUTPUT_ROOTS", "")

# Seed uploads (reverse-image expansion launched from the web)
#: most seed images one launch may upload
SCENEIMG_SEED_MAX_FILES = env_int("SCENEIMG_SEED_MAX_FILES", 50)
#: most bytes of seed images one launch may upload, all files together
SCENEIMG_SEED_MAX_TOTAL_BYTES = env_int("SCENEIMG_SEED_MAX_TOTAL_BYTES", 100 * 1024 * 1024)
#: days after its runs ended (or, used by no run, after upload) that purge_seeds removes an uploaded seed
SCENEIMG_SEED_RETENTION_DAYS = env_int("SCENEIMG_SEED_RETENTION_DAYS", 30)

# Ingest filters (per-run parameters override these)
#: narrower images are stored as `invalid`
SCENEIMG_MIN_WIDTH = env_int("SCENEIMG_MIN_WIDTH", 256)
#: lower images are stored as `invalid`
SCENEIMG_MIN_HEIGHT = env_int("SCENEIMG_MIN_HEIGHT", 256)
#: largest ratio of the longer side to the shorter one
SCENEIMG_MAX_ASPECT = env_float("SCENEIMG_MAX_ASPECT", 3.0)
# 40 MP covers every camera photo of a room; larger declared sizes are mostly bombs or panoramas.
#: larger declared sizes are refused before decoding
SCENEIMG_MAX_PIXELS = env_int("SCENEIMG_MAX_PIXELS", 40_000_000)
#: memory, MB, that images being decoded may take at once in one process, whatever the number of threads (crawl/pixel_budget.py)
SCENEIMG_DECODE_MEMORY_MB = env_int("SCENEIMG_DECODE_MEMORY_MB", 1024)
#: longest side of a thumbnail, pixels
SCENEIMG_THUMB_SIZE = env_int("SCENEIMG_THUMB_SIZE", 320)
#: quality of re-encoded JPEGs
SCENEIMG_JPEG_QUALITY = env_int("SCENEIMG_JPEG_QUALITY", 92)

# Baidu (outside URLs are settings so tests point them at loopback fakes)
#: the keyword-search host
SCENEIMG_BAIDU_IMAGE_URL = env_str("SCENEIMG_BAIDU_IMAGE_URL", "https://image.baidu.com")
#: the reverse-image host
SCENEIMG_BAIDU_GRAPH_URL = env_str("SCENEIMG_BAIDU_GRAPH_URL", "https://graph.baidu.com")
#: least seconds between two requests to Baidu's API or pages, all workers together (image downloads are not paced)
SCENEIMG_BAIDU_PACING = env_float("SCENEIMG_BAIDU_PACING", 1.0)
#: retries after an antiFlag body, a captcha redirect or a 403/429 before a query is given up
SCENEIMG_BAIDU_REFUSAL_RETRIES = env_int("SCENEIMG_BAIDU_REFUSAL_RETRIES", 3)
#: seconds before the first retry after a refusal; doubles each time
SCENEIMG_BAIDU_REFUSAL_BACKOFF = env_float("SCENEIMG_BAIDU_REFUSAL_BACKOFF", SCENEIMG_BAIDU_PACING * 10)
# Baidu checks only that the header is there, so a token-shaped placeholder is sent without this.
#: a real `Acs-Token` from a browser session, for reverse-image uploads
SCENEIMG_BAIDU_ACS_TOKEN = env_str("SCENEIMG_BAIDU_ACS_TOKEN", "")
