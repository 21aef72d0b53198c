"""Team review settings, read from the environment.

Each `#:` comment is the setting's meaning in docs/configuration.md (scripts/config_docs.py reads it).
"""
from sceneimg_site.env import env_int

#: seconds a reviewer holds the images of a claimed queue batch before they go back to the pool
SCENEIMG_TEAM_LEASE_SECONDS = env_int("SCENEIMG_TEAM_LEASE_SECONDS", 15 * 60)
#: images one claim of a review queue hands a reviewer (the batch the viewer opens on)
SCENEIMG_TEAM_BATCH = env_int("SCENEIMG_TEAM_BATCH", 50)
#: "my queue" counts what is left up to this many images, then says "more than"
SCENEIMG_TEAM_LEFT_LIMIT = env_int("SCENEIMG_TEAM_LEFT_LIMIT", 1000)
