"""Queue names. One queue per kind of work so slow VLM calls never starve crawls or scoring."""
CRAWL = "crawl"
SCORE = "score"
VLM = "vlm"
EXPORT = "export"
DEFAULT = "default"
ALL = (CRAWL, SCORE, VLM, EXPORT, DEFAULT)
