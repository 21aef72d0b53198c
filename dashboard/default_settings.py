#: Seconds the dashboard's figures may be old before opening the page refreshes them in the background.
SCENEIMG_DASHBOARD_MAX_AGE = 120
#: Days of history in the dashboard's per-day charts (reviews, VLM cost).
SCENEIMG_DASHBOARD_DAYS = 30
#: Rows in each "keep rate by ..." table (the largest groups first).
SCENEIMG_DASHBOARD_TOP = 15
