"""The dashboard's settings, each read from the environment variable of the same name."""
from sceneimg_site.env import env_int

#: Seconds the dashboard's figures may be old before opening the page refreshes them in the background.
SCENEIMG_DASHBOARD_MAX_AGE = env_int("SCENEIMG_DASHBOARD_MAX_AGE", 120)
#: Days of history in the dashboard's per-day charts (reviews, VLM cost).
SCENEIMG_DASHBOARD_DAYS = env_int("SCENEIMG_DASHBOARD_DAYS", 30)
#: Rows in each "keep rate by ..." table (the largest groups first).
SCENEIMG_DASHBOARD_TOP = env_int("SCENEIMG_DASHBOARD_TOP", 15)
