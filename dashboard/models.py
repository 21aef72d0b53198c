"""The dashboard's figures, computed by a job and read whole by the page (no COUNT per request)."""
from django.db import models


class Snapshot(models.Model):
    computed_at = models.DateTimeField(db_index=True)
    seconds = models.FloatField()  # how long the computation took
    figures = models.JSONField()

    class Meta:
        get_latest_by = "computed_at"

    def __str__(self):
        return f"dashboard figures of {self.computed_at:%Y-%m-%d %H:%M:%S}"
